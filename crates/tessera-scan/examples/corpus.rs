//! Generates a labelled corpus for the scan benchmark: `corpus DIR MEGABYTES`. Writes
//! `DIR/expected.tsv` (path, rule) for every planted secret.

#[path = "corpus/gen.rs"]
mod gen;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "corpus".into()));
    let mb: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    // ~20 KB a file (400 lines of ~50 bytes).
    let files = mb * 1024 / 20;
    let expected = gen::write(&dir, files, 400, 50, 42)?;
    let mut tsv = String::new();
    for (path, rule) in &expected {
        tsv.push_str(&format!("{path}\t{rule}\n"));
    }
    std::fs::write(dir.join("expected.tsv"), tsv)?;
    println!("{files} files, {} planted secrets, in {}", expected.len(), dir.display());
    Ok(())
}
