//! Prints `kernels/src/formats/tq_tables.rs` from the codebook generator:
//! `cargo run -p gq-kernels --release --example tq_tables > kernels/src/formats/tq_tables.rs`.
fn main() {
    print!("{}", gq_kernels::formats::tq_codebook::render_tables());
}
