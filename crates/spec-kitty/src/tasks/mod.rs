//! Moving work packages between lanes and listing them. A move rewrites
//! the work-package file and queues a `WPStatusChanged` event; it needs no
//! network and no log-in.

pub mod git;
pub mod identity;
pub mod project;
pub mod publish;
pub mod suggest;
pub mod wp_file;
pub mod yaml_line;

use std::path::{Path, PathBuf};

use serde::Serialize;
use spec_kitty_protocol::{Envelope, Event, Lane, WpStatusChanged, timestamp};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::home::paths::{self, Home};
use crate::queue::{Queue, QueueError};
use crate::session::credentials::{self, Stored};
use crate::tasks::project::{Project, ProjectError, WorkPackageFile};
use crate::tasks::wp_file::{HistoryEntry, WpError, WpFile};

/// Why a task command failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("{path} cannot be changed: {source}", path = paths::display(path))]
    File { path: PathBuf, source: WpError },
    #[error("unknown lane '{given}'.{} Valid lanes: {}", suggest::did_you_mean(suggest::closest(given, Lane::VALID_NAMES)), Lane::VALID_NAMES.join(", "))]
    UnknownLane { given: String },
    #[error("{wp_id} has lane '{found}' in {path}, which is not a known lane (valid: {}); fix the file", Lane::VALID_NAMES.join(", "), path = paths::display(path))]
    BadFileLane {
        wp_id: String,
        found: String,
        path: PathBuf,
    },
    #[error("{wp_id} is done; moving it back to {to} needs --force and --reason TEXT")]
    Backwards { wp_id: String, to: String },
    #[error("--force needs --reason TEXT saying why")]
    ForceWithoutReason,
    #[error("{wp_id} is already in {lane}; nothing changed")]
    AlreadyThere { wp_id: String, lane: String },
}

/// What `move-task` asks for.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub wp: String,
    pub to: String,
    pub feature: Option<String>,
    pub agent: Option<String>,
    pub note: Option<String>,
    pub force: bool,
    pub reason: Option<String>,
}

/// What a move did.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub wp_id: String,
    pub feature: String,
    pub file: PathBuf,
    pub from_lane: Option<String>,
    pub to_lane: String,
    pub sync_lane: String,
    pub event_id: String,
    pub lamport_clock: u64,
    /// What was published to the team board before the move.
    pub published: AutoPublish,
}

/// A work package as `list-tasks` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub wp_id: String,
    pub lane: Option<String>,
    pub title: Option<String>,
    pub assignee: Option<String>,
    pub last_change: Option<String>,
    pub file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads a lane from a file; `approved` (Python 2.x) is read as for_review.
pub(crate) fn file_lane(value: &str) -> Option<Lane> {
    Lane::parse(value)
        .ok()
        .or_else(|| (value.trim() == "approved").then_some(Lane::ForReview))
}

fn file_timestamp(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| timestamp::format(at))
}

pub(crate) fn read(path: &Path) -> Result<String, TaskError> {
    std::fs::read_to_string(path).map_err(|source| {
        TaskError::Project(ProjectError::Read {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// The lane asked for, once the request is known to make sense.
fn requested_lane(request: &MoveRequest) -> Result<Lane, TaskError> {
    let to = Lane::parse(&request.to).map_err(|_| TaskError::UnknownLane {
        given: request.to.clone(),
    })?;
    if request.force
        && request
            .reason
            .as_deref()
            .is_none_or(|r| r.trim().is_empty())
    {
        return Err(TaskError::ForceWithoutReason);
    }
    Ok(to)
}

/// The team the event names and who moved the package. Logged out, or a
/// broken credentials file, must not stop local work: the event just
/// carries no team (the server uses the sender's). With `SPEC_KITTY_TOKEN`
/// set the credentials file is someone else's and is not read: the same.
pub(crate) fn sender(home: &Home, agent: Option<&str>) -> (Option<String>, String) {
    let stored = if crate::session::env_token::is_set() {
        Ok(Stored::Absent)
    } else {
        credentials::load(home)
    };
    let (team, username) = match stored {
        Ok(Stored::Present(creds)) => (creds.team_slug.clone(), Some(creds.username.clone())),
        Ok(Stored::Absent) => (None, None),
        Err(e) => {
            eprintln!("warning: {e}; the event is queued without a team");
            (None, None)
        }
    };
    let actor = agent
        .map(str::to_string)
        .or(username)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    (team, actor)
}

/// One move, everything known before the file is read.
struct Move<'a> {
    request: &'a MoveRequest,
    to: Lane,
    project: &'a Project,
    git: &'a git::GitInfo,
    feature: &'a project::Feature,
    wp_id: &'a str,
    path: &'a Path,
    team: Option<String>,
    actor: String,
    now: OffsetDateTime,
    correlation_id: String,
}

/// The file read and the move found to make sense, nothing written yet.
struct Prepared {
    text: String,
    from: Option<Lane>,
    identity: identity::Identity,
}

/// What the move did to the file: its text before and the lane it left.
struct Rewritten {
    original: String,
    from: Option<Lane>,
}

impl Move<'_> {
    fn file_error(&self, source: WpError) -> TaskError {
        TaskError::File {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// The lane the file has, refusing a move that changes nothing or
    /// leaves `done` without `--force`.
    fn lane_left(&self, wp: &WpFile<'_>) -> Result<Option<Lane>, TaskError> {
        let from = match wp.fields().lane {
            Some(value) => Some(file_lane(&value).ok_or_else(|| TaskError::BadFileLane {
                wp_id: self.wp_id.to_string(),
                found: value.clone(),
                path: self.path.to_path_buf(),
            })?),
            None => None,
        };
        if from == Some(self.to) {
            return Err(TaskError::AlreadyThere {
                wp_id: self.wp_id.to_string(),
                lane: self.to.as_str().into(),
            });
        }
        if from == Some(Lane::Done) && !self.request.force {
            return Err(TaskError::Backwards {
                wp_id: self.wp_id.to_string(),
                to: self.to.as_str().into(),
            });
        }
        Ok(from)
    }

    /// Reads the file, checks the move and loads the project identity
    /// (before the file is written: a broken config.yaml leaves it as it was).
    fn prepare(&self) -> Result<Prepared, TaskError> {
        let text = read(self.path)?;
        let from = self.lane_left(&WpFile::parse(&text).map_err(|e| self.file_error(e))?)?;
        let identity = identity::load_or_create(self.project)?;
        Ok(Prepared {
            text,
            from,
            identity,
        })
    }

    /// What every event of this run shares.
    fn context(&self, identity: &identity::Identity) -> publish::Context {
        publish::Context {
            identity: identity.clone(),
            team: self.team.clone(),
            actor: self.actor.clone(),
            git: self.git.clone(),
            now: self.now,
            correlation_id: self.correlation_id.clone(),
        }
    }

    /// Rewrites the file: the lane, a history entry and an Activity Log line.
    fn rewrite(&self, prepared: Prepared) -> Result<Rewritten, TaskError> {
        let to = self.to;
        let wp = WpFile::parse(&prepared.text).map_err(|e| self.file_error(e))?;
        let mut action = self
            .request
            .note
            .clone()
            .unwrap_or_else(|| format!("Moved to {to}"));
        if self.request.force
            && let Some(reason) = &self.request.reason
        {
            action = format!("{action} (forced: {reason})");
        }
        // One Activity Log line each: no line breaks from --note or --agent.
        let action = one_line(&action);
        let actor = one_line(&self.actor);
        let stamp = file_timestamp(self.now);
        let entry = HistoryEntry {
            timestamp: stamp.clone(),
            lane: to.as_str().into(),
            agent: actor.clone(),
            shell_pid: std::os::unix::process::parent_id().to_string(),
            action: action.clone(),
        };
        let log_line = format!("- {stamp} – {actor} – lane={to} – {action}");
        let updated = wp
            .moved(to.as_str(), &entry, &log_line)
            .map_err(|e| self.file_error(e))?;
        write_wp_file(self.path, &updated).map_err(|source| {
            TaskError::Project(ProjectError::Write {
                path: self.path.to_path_buf(),
                source,
            })
        })?;
        Ok(Rewritten {
            original: prepared.text,
            from: prepared.from,
        })
    }

    /// The `WPStatusChanged` event of the move.
    fn event(&self, from: Option<Lane>, envelope: Envelope) -> Event {
        let payload = WpStatusChanged {
            feature_slug: self.feature.slug.clone(),
            wp_id: self.wp_id.to_string(),
            from_lane: from.map(|l| l.to_sync().as_str().to_string()),
            to_lane: self.to.to_sync().as_str().to_string(),
            actor: one_line(&self.actor),
            force: self.request.force,
            reason: self.request.reason.clone(),
            execution_mode: None,
            review_ref: None,
            evidence: None,
            extra: serde_json::Map::new(),
        };
        payload.into_event(envelope)
    }

    /// Publishes the feature first when this machine never did; a broken
    /// sibling file must not stop the move, so it becomes a warning and
    /// the feature stays unpublished (the next move or publish retries).
    fn publish_first(
        &self,
        w: &mut crate::queue::Writer<'_>,
        ctx: &publish::Context,
    ) -> Result<AutoPublish, TaskError> {
        if w.feature_published(&ctx.identity.uuid, &self.feature.slug)? {
            return Ok(AutoPublish::default());
        }
        match publish::plan(self.feature) {
            Ok(plan) => Ok(AutoPublish {
                queued: Some(publish::queue_plan(w, ctx, &plan, Some(self.wp_id))?),
                warning: None,
            }),
            Err(e) => Ok(AutoPublish {
                queued: None,
                warning: Some(format!(
                    "feature {} was not published to the team board: {e}. Fix it, then run `spec-kitty agent tasks publish`",
                    self.feature.slug
                )),
            }),
        }
    }

    /// Inside the queue transaction: publish if needed, tick, rewrite the
    /// file, queue the move and record that this package's lane was sent.
    fn run(
        &self,
        w: &mut crate::queue::Writer<'_>,
        rewritten: &mut Option<Rewritten>,
    ) -> Result<(Event, AutoPublish), TaskError> {
        let prepared = self.prepare()?;
        let ctx = self.context(&prepared.identity);
        let published = self.publish_first(w, &ctx)?;
        let lamport = w.tick();
        let done = rewritten.insert(self.rewrite(prepared)?);
        let event = self.event(done.from, ctx.envelope(lamport));
        w.enqueue(&event)?;
        w.record_status(
            &ctx.identity.uuid,
            &self.feature.slug,
            self.wp_id,
            &event.event_id,
        )?;
        Ok((event, published))
    }
}

/// What `move-task` published before its move.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AutoPublish {
    /// The events queued for the feature, when it was published now.
    pub queued: Option<publish::Counts>,
    /// Why the feature could not be published (the move went ahead).
    pub warning: Option<String>,
}

/// Moves a work package: rewrites its file and queues the event, the
/// Lamport tick and the enqueue in one transaction. The file is read and
/// written inside that transaction too, so concurrent moves of the same
/// package are serialized instead of losing an update. A feature this
/// machine never published is published first, in the same transaction.
pub fn move_task(home: &Home, cwd: &Path, request: &MoveRequest) -> Result<Moved, TaskError> {
    let to = requested_lane(request)?;
    let project = Project::find(cwd)?;
    let git = git::info(&project.root);
    let feature = project.feature(request.feature.as_deref(), git.branch.as_deref())?;
    let WorkPackageFile { wp_id, path } = feature.work_package(&request.wp)?;
    let (team, actor) = sender(home, request.agent.as_deref());
    let mv = Move {
        request,
        to,
        project: &project,
        git: &git,
        feature: &feature,
        wp_id: &wp_id,
        path: &path,
        team,
        actor,
        now: OffsetDateTime::now_utc(),
        correlation_id: ulid::Ulid::new().to_string(),
    };

    let mut queue = Queue::open(home)?;
    let mut rewritten: Option<Rewritten> = None;
    let result = queue.write(0, |w| mv.run(w, &mut rewritten));
    let (event, published) = match result {
        Ok(done) => done,
        Err(e) => {
            // The file was rewritten but the event could not be queued:
            // put the file back, so the two never disagree.
            if let Some(done) = rewritten {
                let _ = write_wp_file(&path, &done.original);
            }
            return Err(e);
        }
    };
    Ok(Moved {
        from_lane: rewritten
            .and_then(|r| r.from)
            .map(|l| l.as_str().to_string()),
        wp_id,
        feature: feature.slug,
        file: path,
        to_lane: to.as_str().into(),
        sync_lane: to.to_sync().as_str().into(),
        event_id: event.event_id,
        lamport_clock: event.lamport_clock,
        published,
    })
}

/// The text with line breaks and other control characters as spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Replaces a work-package file atomically, keeping its mode. A symlinked
/// file stays a link: the edit goes to the file it points to (written
/// beside that file, so the rename stays on its file system), instead of a
/// regular file replacing the link while the real file keeps the old lane.
fn write_wp_file(path: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path)?;
    crate::home::atomic::write(&target, text.as_bytes(), file_mode(&target))
}

fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644)
}

/// Lists the work packages of a feature, optionally only those in `lane`.
pub fn list_tasks(
    cwd: &Path,
    feature: Option<&str>,
    lane: Option<&str>,
) -> Result<(String, Vec<Listed>), TaskError> {
    let wanted = lane
        .map(|l| {
            Lane::parse(l).map_err(|_| TaskError::UnknownLane {
                given: l.to_string(),
            })
        })
        .transpose()?;
    let project = Project::find(cwd)?;
    let git = git::info(&project.root);
    let feature = project.feature(feature, git.branch.as_deref())?;
    let mut listed = Vec::new();
    for wp in feature.work_packages()? {
        let text = read(&wp.path)?;
        let entry = match WpFile::parse(&text) {
            Ok(file) => {
                let f = file.fields();
                Listed {
                    wp_id: wp.wp_id.clone(),
                    lane: f.lane,
                    title: f.title,
                    assignee: f.assignee,
                    last_change: f.last_change,
                    file: wp.path.clone(),
                    error: None,
                }
            }
            Err(e) => Listed {
                wp_id: wp.wp_id.clone(),
                lane: None,
                title: None,
                assignee: None,
                last_change: None,
                file: wp.path.clone(),
                error: Some(e.to_string()),
            },
        };
        let keep = match wanted {
            None => true,
            Some(w) => entry.lane.as_deref().and_then(file_lane) == Some(w),
        };
        if keep {
            listed.push(entry);
        }
    }
    Ok((feature.slug, listed))
}
