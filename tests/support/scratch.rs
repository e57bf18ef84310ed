//! A copy of the demo deployment (configuration files and data) in a temporary directory of its
//! own, removed when dropped: to change one thing at a time.

#![allow(dead_code)]

use std::path::PathBuf;

pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("callrouter-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["config", "data"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create scratch dirs");
        }
        for file in [
            "config/callrouter.toml",
            "config/issue-types.toml",
            "config/rules.toml",
            "data/communes.json",
            "data/epci.json",
            "data/buildings.csv",
            "data/tenants.csv",
        ] {
            std::fs::copy(file, dir.join(file)).expect("copy the demo deployment");
        }
        Scratch { dir }
    }

    /// The main configuration file of the copy.
    pub fn main(&self) -> PathBuf {
        self.dir.join("config/callrouter.toml")
    }

    /// Appends text to one of the copy's files.
    pub fn append(&self, file: &str, extra: &str) {
        let path = self.dir.join(file);
        let mut text = std::fs::read_to_string(&path).expect("read scratch file");
        text.push_str(extra);
        std::fs::write(&path, text).expect("write scratch file");
    }
    /// Replaces the first occurrence of `from` in a file; the text must be there.
    pub fn replace(&self, file: &str, from: &str, to: &str) {
        let path = self.dir.join(file);
        let text = std::fs::read_to_string(&path).expect("read scratch file");
        assert!(text.contains(from), "{file} must contain {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write scratch file");
    }

    /// The 1-based line of the first occurrence of `needle` in a file.
    pub fn line_of(&self, file: &str, needle: &str) -> usize {
        let text = std::fs::read_to_string(self.dir.join(file)).expect("read scratch file");
        let at = text.find(needle).expect("needle present");
        text[..at].matches('\n').count() + 1
    }

    /// Loads the deployment, which must fail, and returns the messages.
    pub fn problems(&self) -> Vec<String> {
        match callrouter::config::load(&self.main()) {
            Ok(_) => panic!(
                "the broken configuration in {} was accepted",
                self.dir.display()
            ),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
