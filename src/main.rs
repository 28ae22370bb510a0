use clap::Parser;

fn main() {
    let _ = ctrlc::set_handler(|| {
        gq::pipeline::INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let cli = gq::cli::Cli::parse();
    if let Err(e) = gq::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
