//! The inputs the workloads read, generated deterministically (the same bytes on every
//! machine) and kept between runs: a stamp file records what was generated, so a change of
//! shape here regenerates them.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

/// A small deterministic generator (xorshift64*): the inputs and the drivers' choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "map", "grow", "heap", "pause", "bucket", "table", "group", "split", "hash", "seed", "load",
    "factor", "sweep", "mark", "assist", "arena", "span", "page", "scavenge", "stack",
];

/// The file tree: [`TREE_DIRS`] × [`TREE_SUBDIRS`] directories of [`TREE_FILES`] files of
/// 0.5–8 KiB, half text and half incompressible bytes: many small files, which is what makes a
/// backup build a large index and a file server list long directories.
pub const TREE_DIRS: u64 = 60;
pub const TREE_SUBDIRS: u64 = 4;
pub const TREE_FILES: u64 = 250;

/// `d07/s2/f0123.dat` of the tree.
pub fn tree_file(d: u64, s: u64, f: u64) -> String {
    format!("d{d:02}/s{s}/f{f:04}.dat")
}

pub fn tree(root: &Path) -> Result<PathBuf> {
    let dir = root.join("tree");
    let stamp = format!("tree v1 {TREE_DIRS}x{TREE_SUBDIRS}x{TREE_FILES}");
    generate(&dir, &stamp, |dir| {
        let mut rng = Rng::new(1);
        for d in 0..TREE_DIRS {
            for s in 0..TREE_SUBDIRS {
                fs::create_dir_all(dir.join(format!("d{d:02}/s{s}")))?;
                for f in 0..TREE_FILES {
                    let len = 512 + rng.below(7680) as usize;
                    let mut bytes = Vec::with_capacity(len);
                    while bytes.len() < len / 2 {
                        bytes.extend_from_slice(&rng.next().to_le_bytes());
                    }
                    while bytes.len() < len {
                        bytes.extend_from_slice(
                            WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes(),
                        );
                        bytes.push(b' ');
                    }
                    fs::write(dir.join(tree_file(d, s, f)), bytes)?;
                }
            }
        }
        Ok(())
    })?;
    Ok(dir)
}

/// Pages of the generated site.
pub const SITE_PAGES: u64 = 10_000;

/// A site of [`SITE_PAGES`] Markdown pages with tags and categories (taxonomy pages, paginated
/// lists), rendered by two small layouts.
pub fn site(root: &Path) -> Result<PathBuf> {
    let dir = root.join("site");
    generate(&dir, &format!("site v1 {SITE_PAGES}"), |dir| {
        fs::create_dir_all(dir.join("content/posts"))?;
        fs::create_dir_all(dir.join("layouts/_default"))?;
        fs::write(
            dir.join("hugo.toml"),
            "baseURL = \"http://127.0.0.1/\"\ntitle = \"corpus\"\n\
             [taxonomies]\ntag = \"tags\"\ncategory = \"categories\"\n",
        )?;
        fs::write(
            dir.join("layouts/_default/single.html"),
            "<html><body><h1>{{ .Title }}</h1>{{ .Content }}<ul>{{ range .Params.tags }}\
             <li>{{ . }}</li>{{ end }}</ul>{{ with .NextInSection }}\
             <a href=\"{{ .RelPermalink }}\">next</a>{{ end }}</body></html>",
        )?;
        fs::write(
            dir.join("layouts/_default/list.html"),
            "<html><body><h1>{{ .Title }}</h1><ul>{{ range .Paginator.Pages }}\
             <li><a href=\"{{ .RelPermalink }}\">{{ .Title }}</a> {{ .Summary }}</li>\
             {{ end }}</ul></body></html>",
        )?;
        let mut rng = Rng::new(2);
        let word = |rng: &mut Rng| WORDS[rng.below(WORDS.len() as u64) as usize];
        for i in 0..SITE_PAGES {
            let tags: Vec<String> = (0..3).map(|_| format!("\"{}\"", word(&mut rng))).collect();
            let mut body = String::new();
            for _ in 0..8 {
                for _ in 0..60 {
                    body.push_str(word(&mut rng));
                    body.push(' ');
                }
                body.push_str("\n\n");
            }
            let page = format!(
                "---\ntitle: \"Post {i}\"\ndate: 2024-01-{:02}\ntags: [{}]\ncategories: [\"{}\"]\n---\n\n\
                 # Heading\n\n{body}* item\n* item `code`\n",
                i % 28 + 1,
                tags.join(", "),
                word(&mut rng),
            );
            fs::write(dir.join(format!("content/posts/p{i:05}.md")), page)?;
        }
        Ok(())
    })?;
    Ok(dir)
}

/// Modules of the generated JavaScript project.
pub const JS_MODULES: u64 = 400;

/// `src/index.js` importing [`JS_MODULES`] modules, each with a few functions and a class.
pub fn js(root: &Path) -> Result<PathBuf> {
    let dir = root.join("js");
    generate(&dir, &format!("js v1 {JS_MODULES}"), |dir| {
        fs::create_dir_all(dir.join("src"))?;
        let mut index = String::new();
        for m in 0..JS_MODULES {
            index.push_str(&format!("import {{ run{m} }} from './m{m}.js';\n"));
            fs::write(dir.join("src").join(format!("m{m}.js")), js_module(m, 0))?;
        }
        index.push_str("export const all = [");
        for m in 0..JS_MODULES {
            index.push_str(&format!("run{m}, "));
        }
        index.push_str("];\n");
        fs::write(dir.join("src/index.js"), index)?;
        Ok(())
    })?;
    Ok(dir)
}

/// One module; `edit` changes its constants, so that a rewrite makes the bundler rebuild.
pub fn js_module(m: u64, edit: u64) -> String {
    let mut text = String::new();
    for f in 0..8 {
        text.push_str(&format!(
            "function f{f}(x) {{ const t = {{ a: x + {edit}, b: '{}', c: [x, {f}, {m}] }}; return t.a * {f} + t.c.length; }}\n",
            WORDS[((m + f) % WORDS.len() as u64) as usize]
        ));
    }
    text.push_str(&format!(
        "export class C{m} {{ constructor() {{ this.v = new Map(); }} add(k) {{ this.v.set(k, f1(k)); return this; }} }}\n\
         export function run{m}(n) {{ let s = 0; for (let i = 0; i < n; i++) s += f0(i) + f7(i); return new C{m}().add(s); }}\n"
    ));
    text
}

/// Runs `make` into a fresh `dir` unless `dir/.stamp` says `stamp` already.
fn generate(dir: &Path, stamp: &str, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let stamp_file = dir.join(".stamp");
    if fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    crate::progress(&format!("realworld: generating {} ... ", dir.display()));
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    make(dir).with_context(|| format!("generating {}", dir.display()))?;
    fs::write(&stamp_file, stamp)?;
    println!("ok");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_spreads() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..100).map(|_| a.below(10)).collect();
        assert_eq!(xs, (0..100).map(|_| b.below(10)).collect::<Vec<_>>());
        assert!((0..10).all(|v| xs.contains(&v)), "{xs:?}");
    }

    #[test]
    fn an_edited_module_differs() {
        assert_ne!(js_module(3, 0), js_module(3, 1));
        assert!(js_module(3, 0).contains("export function run3"));
    }
}
