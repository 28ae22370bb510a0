use clap::Parser;

fn main() {
    let _ = ctrlc::set_handler(|| {
        gq::pipeline::INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let cli = gq::cli::Cli::parse();
    if let Err(e) = gq::cli::run(cli) {
        if let Some(x) = e.downcast_ref::<gq::cli::Exit>() {
            if !x.message.is_empty() {
                eprintln!("error: {}", x.message);
            }
            std::process::exit(x.code);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
