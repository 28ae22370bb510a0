use clap::Parser;

fn main() {
    let _ = gq::atomic_file::install_signal_handler();
    let cli = gq::cli::Cli::parse();
    if let Err(e) = gq::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
