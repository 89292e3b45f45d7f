//! The efgs-server binary.
fn main() {
    println!("efgs-server: not yet implemented");
}
