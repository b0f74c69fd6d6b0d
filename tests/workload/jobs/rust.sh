# Rust: `cargo build` and `cargo test --offline` of a small crate with a path dependency.
prepare() {
  # a credentials file the job must never read (a secret the policy denies)
  mkdir -p "$HOME/.cargo" && echo '[registry]
token = "not-a-real-token"' > "$HOME/.cargo/credentials.toml"
}
run() {
  cargo new --quiet --lib util
  cat > util/src/lib.rs <<'R'
pub fn double(x: u32) -> u32 { x * 2 }
#[cfg(test)]
mod tests { #[test] fn doubles() { assert_eq!(super::double(4), 8); } }
R
  cargo new --quiet app
  printf 'util = { path = "../util" }\n' >> app/Cargo.toml
  cat > app/src/main.rs <<'R'
fn main() { println!("rust job: {}", util::double(21)); }
#[cfg(test)]
mod tests { #[test] fn uses_util() { assert_eq!(util::double(1), 2); } }
R
  cd app
  cargo build --offline
  cargo test --offline
  ./target/debug/app
}
