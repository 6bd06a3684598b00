//! Finding the project, its features and work packages, and its identity
//! (contract sections 6 and 7).

use std::path::{Path, PathBuf};

use crate::home::paths;

/// Why the project, a feature or a work package could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no spec-kitty project here: no kitty-specs/ or .kittify/ folder in {start} or any folder above it. Run this inside a spec-kitty project", start = paths::display(start))]
    NotFound { start: PathBuf },
    #[error("the project at {root} has no features in kitty-specs/", root = paths::display(root))]
    NoFeatures { root: PathBuf },
    #[error("no feature '{wanted}'.{} Features: {}", crate::tasks::suggest::did_you_mean(crate::tasks::suggest::closest(wanted, available.iter().map(String::as_str))), available.join(", "))]
    UnknownFeature {
        wanted: String,
        available: Vec<String>,
    },
    #[error("this project has several features; choose one with --feature: {}", available.join(", "))]
    AmbiguousFeature { available: Vec<String> },
    #[error("no work package {wanted} in feature {feature}.{} Work packages: {}", crate::tasks::suggest::did_you_mean(crate::tasks::suggest::work_package(wanted, available)), if available.is_empty() { "(none)".to_string() } else { available.join(", ") })]
    UnknownWorkPackage {
        wanted: String,
        feature: String,
        available: Vec<String>,
    },
    #[error("cannot read {path}: {source}", path = paths::display(path))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}", path = paths::display(path))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}; fix the file by hand", path = paths::display(path))]
    InvalidConfig { path: PathBuf, reason: String },
}

/// A project on disk.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
}

/// A feature folder: `kitty-specs/NNN-slug/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub slug: String,
    pub dir: PathBuf,
}

/// A work-package file: `tasks/WPnn-title.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkPackageFile {
    pub wp_id: String,
    pub path: PathBuf,
}

fn is_feature_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 4 && bytes[..3].iter().all(u8::is_ascii_digit) && bytes[3] == b'-'
}

/// `WP` and two or more digits at the start of a file name, as the id.
fn wp_id_of(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".md")?;
    let digits: String = stem
        .strip_prefix("WP")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let rest = &stem[2 + digits.len()..];
    (digits.len() >= 2 && (rest.is_empty() || rest.starts_with('-') || rest.starts_with('_')))
        .then(|| format!("WP{digits}"))
}

impl Project {
    /// Walks up from `start` to the folder holding `kitty-specs/` or `.kittify/`.
    pub fn find(start: &Path) -> Result<Project, ProjectError> {
        let mut dir = Some(start);
        while let Some(current) = dir {
            if current.join("kitty-specs").is_dir() || current.join(".kittify").is_dir() {
                return Ok(Project {
                    root: current.to_path_buf(),
                });
            }
            dir = current.parent();
        }
        Err(ProjectError::NotFound {
            start: start.to_path_buf(),
        })
    }

    /// Every feature, sorted by name.
    pub fn features(&self) -> Result<Vec<Feature>, ProjectError> {
        let specs = self.root.join("kitty-specs");
        let entries = match std::fs::read_dir(&specs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(ProjectError::Read {
                    path: specs,
                    source,
                });
            }
        };
        let mut features: Vec<Feature> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let slug = e.file_name().to_string_lossy().into_owned();
                is_feature_name(&slug).then(|| Feature {
                    slug,
                    dir: e.path(),
                })
            })
            .collect();
        features.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(features)
    }

    /// Chooses a feature: the one named (full name, number or slug part),
    /// the only one, or the one the git branch is named after.
    pub fn feature(
        &self,
        wanted: Option<&str>,
        branch: Option<&str>,
    ) -> Result<Feature, ProjectError> {
        let features = self.features()?;
        if features.is_empty() {
            return Err(ProjectError::NoFeatures {
                root: self.root.clone(),
            });
        }
        let names = || features.iter().map(|f| f.slug.clone()).collect::<Vec<_>>();
        if let Some(wanted) = wanted {
            let wanted = wanted.trim().trim_end_matches('/');
            let found = features.iter().find(|f| {
                f.slug == wanted
                    || f.slug.get(..3) == Some(wanted)
                    || f.slug.get(4..) == Some(wanted)
            });
            return found.cloned().ok_or_else(|| ProjectError::UnknownFeature {
                wanted: wanted.to_string(),
                available: names(),
            });
        }
        if features.len() == 1 {
            return Ok(features[0].clone());
        }
        if let Some(branch) = branch {
            let mut matching = features.iter().filter(|f| {
                branch == f.slug
                    || branch.starts_with(&format!("{}-", f.slug))
                    || branch.ends_with(&format!("/{}", f.slug))
            });
            if let (Some(found), None) = (matching.next(), matching.next()) {
                return Ok(found.clone());
            }
        }
        Err(ProjectError::AmbiguousFeature { available: names() })
    }

    /// The `.kittify/config.yaml` path.
    pub fn config_path(&self) -> PathBuf {
        self.root.join(".kittify").join("config.yaml")
    }

    /// The slug made from the repository folder name.
    pub fn default_slug(&self) -> String {
        let name = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "project".into());
        slugify(&name)
    }
}

/// Lower-case letters and digits, other runs turned into one dash.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "project".into()
    } else {
        slug
    }
}

impl Feature {
    /// Every work-package file, sorted by id (in `tasks/` and, for older
    /// layouts, one folder below it).
    pub fn work_packages(&self) -> Result<Vec<WorkPackageFile>, ProjectError> {
        let tasks = self.dir.join("tasks");
        let mut found = Vec::new();
        let mut dirs = vec![tasks.clone()];
        if let Ok(entries) = std::fs::read_dir(&tasks) {
            dirs.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
        for dir in dirs {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(ProjectError::Read { path: dir, source }),
            };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(wp_id) = wp_id_of(&name)
                    && entry.path().is_file()
                {
                    found.push(WorkPackageFile {
                        wp_id,
                        path: entry.path(),
                    });
                }
            }
        }
        found.sort_by(|a, b| (a.wp_id.len(), &a.wp_id).cmp(&(b.wp_id.len(), &b.wp_id)));
        Ok(found)
    }

    /// The file of one work package (`WP03`, `wp03` or `03`).
    pub fn work_package(&self, wanted: &str) -> Result<WorkPackageFile, ProjectError> {
        let normalized = wanted.trim().to_ascii_uppercase();
        let normalized = if normalized.starts_with("WP") {
            normalized
        } else {
            format!("WP{normalized}")
        };
        let all = self.work_packages()?;
        all.iter()
            .find(|wp| wp.wp_id == normalized)
            .cloned()
            .ok_or_else(|| ProjectError::UnknownWorkPackage {
                wanted: wanted.to_string(),
                feature: self.slug.clone(),
                available: all.iter().map(|wp| wp.wp_id.clone()).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_feature_name("001-cli"));
        assert!(!is_feature_name("cli") && !is_feature_name("01-cli") && !is_feature_name("001"));
        assert_eq!(wp_id_of("WP03-fix-sync.md").as_deref(), Some("WP03"));
        assert_eq!(wp_id_of("WP12.md").as_deref(), Some("WP12"));
        assert_eq!(wp_id_of("WP3-x.md"), None);
        assert_eq!(wp_id_of("WP03-x.txt"), None);
        assert_eq!(slugify("My Project_2"), "my-project-2");
    }

    #[test]
    fn finds_root_features_and_work_packages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("Repo");
        for f in ["001-alpha", "002-beta"] {
            std::fs::create_dir_all(root.join("kitty-specs").join(f).join("tasks")).expect("dirs");
        }
        std::fs::write(
            root.join("kitty-specs/001-alpha/tasks/WP01-a.md"),
            "---\n---\n",
        )
        .expect("wp");
        std::fs::write(
            root.join("kitty-specs/001-alpha/tasks/WP10-b.md"),
            "---\n---\n",
        )
        .expect("wp");
        let deep = root.join("kitty-specs/001-alpha/tasks");
        let project = Project::find(&deep).expect("found");
        assert_eq!(project.root, root);
        assert_eq!(project.default_slug(), "repo");
        assert!(matches!(
            project.feature(None, None),
            Err(ProjectError::AmbiguousFeature { .. })
        ));
        assert_eq!(
            project
                .feature(None, Some("002-beta"))
                .expect("branch")
                .slug,
            "002-beta"
        );
        assert_eq!(
            project.feature(Some("001"), None).expect("number").slug,
            "001-alpha"
        );
        assert_eq!(
            project.feature(Some("beta"), None).expect("slug").slug,
            "002-beta"
        );
        let err = project.feature(Some("003"), None).expect_err("unknown");
        assert!(err.to_string().contains("001-alpha, 002-beta"), "{err}");
        let alpha = project.feature(Some("001-alpha"), None).expect("full");
        let ids: Vec<_> = alpha
            .work_packages()
            .expect("wps")
            .into_iter()
            .map(|w| w.wp_id)
            .collect();
        assert_eq!(ids, ["WP01", "WP10"]);
        assert_eq!(alpha.work_package("wp10").expect("found").wp_id, "WP10");
        assert!(
            alpha
                .work_package("WP02")
                .expect_err("missing")
                .to_string()
                .contains("WP01, WP10")
        );
    }
}
