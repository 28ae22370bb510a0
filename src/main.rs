use clap::Parser;

fn main() {
    let _ = gq::atomic_file::install_signal_handler();
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
