//! The recipe of `datasets/gettext-en-fr`: English → French sentence pairs
//! from the French message catalogs (`/usr/share/locale/fr/LC_MESSAGES/*.mo`)
//! of a pinned list of Debian bookworm packages — human translations of
//! software messages, the source of the OPUS collection's GNOME, KDE and
//! Ubuntu corpora.
//!
//! Kept: msgid → msgstr pairs that are non-empty, one line, free of format
//! directives (`%s`, `%1$d`, `{0}`, `${x}`), markup (`<b>`, `&amp;`) and
//! keyboard accelerators (`_` or `&` in a word), 1–15 words in English,
//! translated (more than the English copied or recased), the first of each
//! English text in package order. Split 90/5/5 by a seeded hash of the English text, so the
//! split of a pair does not change when packages are added.

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use super::registry;

/// Seeds the hash that splits the pairs.
pub const SPLIT_SEED: u64 = 20_150_519;

/// The packages, at their bookworm versions, in the order their pairs are
/// taken (the first translation of an English text wins), with the licence
/// of their translations.
pub const PACKAGES: [(&str, &str, &str); 27] = [
    ("coreutils", "9.1-1", "GPL-3+"),
    ("findutils", "4.9.0-4", "GPL-3+"),
    ("grep", "3.8-5", "GPL-3+"),
    ("sed", "4.9-1+deb12u1", "GPL-3+"),
    ("tar", "1.34+dfsg-1.2+deb12u1", "GPL-3+"),
    ("diffutils", "1:3.8-4", "GPL-3+"),
    ("cpio", "2.13+dfsg-7.1", "GPL-3+"),
    ("bash", "5.2.15-2+b13", "GPL-3+"),
    ("make", "4.3-4.1", "GPL-3+"),
    ("wget", "1.21.3-1+deb12u1", "GPL-3"),
    ("nano", "7.2-1+deb12u1", "GPL-3+"),
    ("bison", "2:3.8.2+dfsg-1+b1", "GPL-3+"),
    ("gettext", "0.21-12", "GPL-3+"),
    ("aspell", "0.60.8-4+b1", "LGPL-2.1"),
    ("git", "1:2.39.5-0+deb12u3", "GPL-2"),
    ("apt", "2.6.2", "GPL-2+"),
    ("dpkg", "1.21.23", "GPL-2+"),
    ("util-linux-locales", "2.38.1-5+deb12u3", "GPL-2+"),
    ("systemd", "252.39-1~deb12u2", "LGPL-2.1+"),
    ("libc-l10n", "2.36-9+deb12u14", "LGPL-2.1+"),
    ("gnupg-l10n", "2.2.40-1.1+deb12u2", "GPL-3+"),
    ("libglib2.0-data", "2.74.6-2+deb12u9", "LGPL-2.1+"),
    (
        "libgtk2.0-common",
        "2.24.33-2+deb12u1",
        "LGPL-2.1+ and GPL-2+",
    ),
    (
        "libgtk-3-common",
        "3.24.38-2~deb12u3",
        "LGPL-2+ and LGPL-2.1+",
    ),
    ("shared-mime-info", "2.2-1", "GPL-2+"),
    ("xkb-data", "2.35.1-1", "MIT-style (X11)"),
    ("iso-codes", "4.15.0-1", "LGPL-2.1+"),
];

const LOCALE_DIR: &str = "usr/share/locale/fr/LC_MESSAGES/";
/// Where a package's licence statement is (`debian/copyright`, installed).
const DOC_DIR: &str = "usr/share/doc/";
const MAX_WORDS: usize = 15;

/// One pair and where it came from.
struct Pair {
    source: String,
    target: String,
    package: &'static str,
}

pub fn generate(out: &Path, seed: u64) -> Result<()> {
    let mut pairs = Vec::new();
    let mut seen = HashSet::new();
    let mut per_package = Vec::new();
    let copyright_dir = out.join("copyright");
    fs::create_dir_all(&copyright_dir)?;
    for (package, version, _) in PACKAGES {
        let mut kept = 0;
        let mut read = 0;
        let mut copyright = false;
        for (path, bytes) in registry::deb_files(package, version, "usr/share/")? {
            if path == format!("{DOC_DIR}{package}/copyright") {
                fs::write(copyright_dir.join(package), &bytes)?;
                copyright = true;
                continue;
            }
            if !path.starts_with(LOCALE_DIR) || !path.ends_with(".mo") {
                continue;
            }
            let messages = parse_mo(&bytes).with_context(|| format!("{package}: {path}"))?;
            read += messages.len();
            for (source, target) in messages {
                let (Some(source), Some(target)) = (clean(&source), clean(&target)) else {
                    continue;
                };
                // Untranslated, or only recased ("Sedang" -> "sedang"): not a translation.
                if source.to_lowercase() == target.to_lowercase() || !seen.insert(source.clone()) {
                    continue;
                }
                kept += 1;
                pairs.push(Pair {
                    source,
                    target,
                    package,
                });
            }
        }
        ensure!(
            read > 0,
            "{package} {version} has no French catalog under {LOCALE_DIR}"
        );
        ensure!(
            copyright,
            "{package} {version} has no {DOC_DIR}{package}/copyright"
        );
        per_package.push((package, version, read, kept));
    }

    let mut splits: [Vec<&Pair>; 3] = Default::default();
    for pair in &pairs {
        splits[split_of(&pair.source, seed)].push(pair);
    }
    fs::create_dir_all(out)?;
    let mut table = String::new();
    for (name, split) in ["train", "valid", "test"].iter().zip(&splits) {
        let mut text = String::new();
        for pair in split {
            writeln!(text, "{}\t{}", pair.source, pair.target)?;
        }
        let file = format!("{name}.tsv");
        fs::write(out.join(&file), &text)?;
        writeln!(
            table,
            "| `{file}` | {} | `{}` |",
            split.len(),
            registry::hex(&Sha256::digest(text.as_bytes()))
        )?;
    }
    fs::write(
        out.join("README.md"),
        readme(&table, &per_package, &splits, seed),
    )?;
    eprintln!(
        "wrote {} pairs ({} train, {} valid, {} test) to {}",
        pairs.len(),
        splits[0].len(),
        splits[1].len(),
        splits[2].len(),
        out.display()
    );
    Ok(())
}

/// 0 (train, 90%), 1 (valid, 5%) or 2 (test, 5%), from the English text alone.
fn split_of(source: &str, seed: u64) -> usize {
    let digest = Sha256::digest(format!("{seed}\t{source}").as_bytes());
    let bucket = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) % 100;
    match bucket {
        0..90 => 0,
        90..95 => 1,
        _ => 2,
    }
}

/// The messages of a GNU `.mo` catalog as (msgid, msgstr): the header and
/// plural forms are left out (a plural's text is built at run time), and a
/// message context (`ctxt\u{4}msgid`) is dropped from the msgid.
///
/// The format (GNU gettext manual, "The Format of GNU MO Files"): a magic
/// number that also gives the byte order, a revision, the number of
/// strings N, and the offsets of two tables of N (length, offset) pairs,
/// the original strings and their translations.
pub fn parse_mo(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let word_at = |at: usize, little: bool| -> Result<usize> {
        let b: [u8; 4] = bytes
            .get(at..at + 4)
            .context("the catalog is truncated")?
            .try_into()
            .expect("4 bytes");
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize)
    };
    let little = match word_at(0, true)? {
        0x9504_12de => true,
        0xde12_0495 => false,
        magic => bail!("not a .mo file (magic number {magic:#x})"),
    };
    let count = word_at(8, little)?;
    let originals = word_at(12, little)?;
    let translations = word_at(16, little)?;
    let string = |table: usize, i: usize| -> Result<&[u8]> {
        let length = word_at(table + 8 * i, little)?;
        let offset = word_at(table + 8 * i + 4, little)?;
        bytes
            .get(offset..offset + length)
            .context("a string runs past the end of the catalog")
    };
    let mut messages = Vec::with_capacity(count);
    for i in 0..count {
        let id = string(originals, i)?;
        let text = string(translations, i)?;
        // The header (empty msgid) and plural messages (NUL-separated forms).
        if id.is_empty() || id.contains(&0) || text.contains(&0) {
            continue;
        }
        let id = match id.iter().rposition(|&b| b == 4) {
            Some(end_of_context) => &id[end_of_context + 1..],
            None => id,
        };
        let (Ok(id), Ok(text)) = (std::str::from_utf8(id), std::str::from_utf8(text)) else {
            continue;
        };
        messages.push((id.to_string(), text.to_string()));
    }
    Ok(messages)
}

/// The text of a message fit for the corpus, with its spaces normalized, or
/// `None` when it is not plain one-line prose of 1–15 words.
pub fn clean(text: &str) -> Option<String> {
    if text.contains(['\n', '\r', '\t', '\u{4}']) {
        return None;
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let words = text.split(' ').filter(|w| !w.is_empty()).count();
    if words == 0 || words > MAX_WORDS || !text.chars().any(char::is_alphabetic) {
        return None;
    }
    // Format directives: printf's %s, %d, %1$s, %-10s, %%; {0}, {name}; ${x}.
    let printf = text.match_indices('%').any(|(at, _)| {
        text[at + 1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "%-+#.*'$".contains(c))
    });
    if printf || text.contains('{') || text.contains('}') || text.contains('$') {
        return None;
    }
    // Markup and entities; keyboard accelerators (_File, &Open).
    if text.contains('<') || text.contains('>') || text.contains('&') || text.contains('_') {
        return None;
    }
    // Option names, paths and commands are not sentences.
    if text.starts_with('-') || text.contains("--") || text.contains('/') || text.contains('\\') {
        return None;
    }
    Some(text)
}

fn readme(
    table: &str,
    per_package: &[(&str, &str, usize, usize)],
    splits: &[Vec<&Pair>; 3],
    seed: u64,
) -> String {
    let mut packages = String::new();
    for ((package, version, read, kept), (_, _, licence)) in per_package.iter().zip(PACKAGES) {
        let _ = writeln!(
            packages,
            "| `{package}` | `{version}` | {licence} | {read} | {kept} |"
        );
    }
    let mut samples = String::new();
    for pair in splits[0]
        .iter()
        .step_by((splits[0].len() / 12).max(1))
        .take(12)
    {
        let _ = writeln!(
            samples,
            "| {} | {} | `{}` |",
            pair.source, pair.target, pair.package
        );
    }
    let total: usize = splits.iter().map(Vec::len).sum();
    format!(
        "# gettext-en-fr: English → French messages of Debian packages

{total} pairs of English software messages and their French translations,
from the French message catalogs (`/usr/share/locale/fr/LC_MESSAGES/*.mo`)
of {n} Debian bookworm packages. These are human translations by each
project's translation team — the same kind of text as the OPUS collection's
GNOME, KDE and Ubuntu corpora: short, technical, often title-like (menu
items, country and language names from `iso-codes`, error messages).

Regenerate with `cargo xtask data gettext-en-fr` (on Debian: `apt-get
download` of each package at the version below, `dpkg-deb --fsys-tarfile`,
the `.mo` files parsed by `xtask/src/data/gettext.rs`).

## Licence

The translations carry the licences of the packages they come from, mostly
the GPL and the LGPL. Each package's `debian/copyright` is copied to
`copyright/PACKAGE` by the recipe; the licence column below is the main
licence that file states (read by hand for this README, and recorded in
`xtask/src/data/gettext.rs`). A model trained on these pairs is arguably a
derived work of GPL'd text: keep that in mind before shipping one.

## Files

`source<TAB>target` per line, UTF-8, English first.

| file | pairs | sha256 |
|---|---|---|
{table}
Split 90/5/5 by the SHA-256 of `\"{seed}\\t\" + English text` (the first
8 bytes, little-endian, modulo 100: below 90 train, below 95 valid, else
test): a pair stays in its split when packages are added.

## What is kept

A msgid → msgstr pair of a catalog is kept when both sides are one line of
1–{MAX_WORDS} words with a letter, without format directives (`%s`, `%1$d`,
`{{0}}`, `${{x}}`), markup or entities (`<`, `>`, `&`), keyboard accelerators
(`_`), paths or option names (`/`, `\\`, a leading `-`, `--`); when the
French differs from the English by more than letter case (untranslated
entries, and names only recased such as `Sedang` → `sedang`, are left
out); and
when its English text is new (the first package in the table's order wins).
Plural messages and the catalog header are left out; a message context is
dropped. Whitespace runs become one space.

| package | version | main licence (see `copyright/PACKAGE`) | messages read | pairs kept |
|---|---|---|---|---|
{packages}
## Sample (one training pair in {step}, in file order)

| English | French | package |
|---|---|---|
{samples}",
        n = per_package.len(),
        step = (splits[0].len() / 12).max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian catalog of `(msgid, msgstr)` pairs, as msgfmt writes one.
    fn catalog(messages: &[(&[u8], &[u8])]) -> Vec<u8> {
        let n = messages.len();
        let header = 28;
        let originals = header;
        let translations = originals + 8 * n;
        let mut data_at = translations + 8 * n;
        let mut tables = Vec::new();
        let mut data = Vec::new();
        for side in [0, 1] {
            for m in messages {
                let s = if side == 0 { m.0 } else { m.1 };
                tables.extend((s.len() as u32).to_le_bytes());
                tables.extend((data_at as u32).to_le_bytes());
                data.extend_from_slice(s);
                data.push(0);
                data_at += s.len() + 1;
            }
        }
        let mut bytes = Vec::new();
        for word in [
            0x9504_12de_u32,
            0,
            n as u32,
            originals as u32,
            translations as u32,
            0,
            0,
        ] {
            bytes.extend(word.to_le_bytes());
        }
        bytes.extend(tables);
        bytes.extend(data);
        bytes
    }

    #[test]
    fn reads_a_catalog_without_header_plurals_or_contexts() {
        let bytes = catalog(&[
            (b"", b"Content-Type: text/plain; charset=UTF-8\n"),
            (b"Open file", b"Ouvrir le fichier"),
            (b"menu\x04Quit", b"Quitter"),
            (b"%d file\0%d files", b"%d fichier\0%d fichiers"),
        ]);
        let messages = parse_mo(&bytes).unwrap();
        assert_eq!(
            messages,
            [
                ("Open file".to_string(), "Ouvrir le fichier".to_string()),
                ("Quit".to_string(), "Quitter".to_string())
            ]
        );
        assert!(parse_mo(b"not a catalog at all").is_err());
        assert!(parse_mo(&bytes[..40]).is_err());
    }

    #[test]
    fn keeps_plain_short_prose_only() {
        assert_eq!(
            clean("  Open   the file ").as_deref(),
            Some("Open the file")
        );
        for bad in [
            "cannot open %s",
            "%1$d items",
            "{0} found",
            "<b>Bold</b>",
            "_File",
            "Save &As",
            "a\nb",
            "--verbose",
            "/usr/bin",
            "123",
            "",
            "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen",
        ] {
            assert_eq!(clean(bad), None, "{bad:?}");
        }
        assert_eq!(clean("100% done"), Some("100% done".into()));
    }

    #[test]
    fn the_split_is_a_function_of_the_text() {
        let counts = (0..10_000).fold([0; 3], |mut c, i| {
            c[split_of(&format!("message {i}"), SPLIT_SEED)] += 1;
            c
        });
        assert_eq!(split_of("Open file", 1), split_of("Open file", 1));
        assert!((8_800..9_200).contains(&counts[0]), "{counts:?}");
        assert!(
            (400..600).contains(&counts[1]) && (400..600).contains(&counts[2]),
            "{counts:?}"
        );
    }
}
