fn main() {
    println!("agent-store: under construction");
}
