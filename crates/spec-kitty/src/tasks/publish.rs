//! `agent tasks publish`: tell the team board about features and work
//! packages before they move (contract section 8, "The client's side").
//!
//! A feature gets a `FeatureCreated`, each work package a `WPCreated`
//! (title and dependencies from its front matter), and a work package
//! whose file is past `planned` but whose lane this machine never sent
//! gets one first `WPStatusChanged` from `planned`, so the board shows it
//! where it is. What was published and which lanes were sent is kept in
//! the queue database ([`Writer`]), so a second publish re-sends titles
//! (they may have changed) but never a second first lane change.
//!
//! Everything of a run is read and checked before anything is queued, and
//! queued in one transaction: a broken file queues nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;
use spec_kitty_protocol::{
    Envelope, Event, FeatureCreated, Lane, SyncLane, WpCreated, WpStatusChanged, timestamp,
};
use time::OffsetDateTime;

use super::identity::{self, Identity};
use super::project::{Feature, Project, ProjectError};
use super::wp_file::WpFile;
use super::{TaskError, file_lane, git, one_line, read, sender};
use crate::home::paths::Home;
use crate::queue::{Queue, QueueError, Writer};

/// The `reason` of a first lane change: no move happened, the lane was
/// read from the file. It also tells these events apart from moves.
pub const FIRST_STATUS_REASON: &str = "Published: lane read from the work-package file";

/// Who, where and when: what every event of one command run shares.
pub struct Context {
    pub identity: Identity,
    pub team: Option<String>,
    pub actor: String,
    pub git: git::GitInfo,
    pub now: OffsetDateTime,
    /// One per command run: groups its events.
    pub correlation_id: String,
}

impl Context {
    /// The envelope of the run's next event, with Lamport value `lamport`.
    pub fn envelope(&self, lamport: u64) -> Envelope {
        Envelope {
            event_id: ulid::Ulid::new().to_string(),
            timestamp: timestamp::format(self.now),
            node_id: self.identity.node_id.clone(),
            lamport_clock: lamport,
            correlation_id: Some(self.correlation_id.clone()),
            project_uuid: self.identity.uuid.clone(),
            project_slug: Some(self.identity.slug.clone()),
            team_slug: self.team.clone(),
            git_branch: self.git.branch.clone(),
            head_commit_sha: self.git.commit.clone(),
        }
    }
}

/// One work package as its file describes it.
#[derive(Debug, Clone)]
struct PlannedWp {
    wp_id: String,
    title: Option<String>,
    dependencies: Vec<String>,
    /// `None` when the file has no `lane:` (nothing to tell but its title).
    lane: Option<Lane>,
}

/// A feature read and checked, ready to be queued.
#[derive(Debug, Clone)]
pub struct Plan {
    slug: String,
    work_packages: Vec<PlannedWp>,
}

fn file_error(path: &Path, source: super::wp_file::WpError) -> TaskError {
    TaskError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads every work-package file of `feature`; the first unreadable
/// file, unknown lane or bad dependency is an error naming the file.
pub fn plan(feature: &Feature) -> Result<Plan, TaskError> {
    let mut work_packages = Vec::new();
    for file in feature.work_packages()? {
        let text = read(&file.path)?;
        let wp = WpFile::parse(&text).map_err(|e| file_error(&file.path, e))?;
        let fields = wp.fields();
        let lane = match fields.lane {
            Some(value) => Some(file_lane(&value).ok_or_else(|| TaskError::BadFileLane {
                wp_id: file.wp_id.clone(),
                found: value.clone(),
                path: file.path.clone(),
            })?),
            None => None,
        };
        work_packages.push(PlannedWp {
            dependencies: wp.dependencies().map_err(|e| file_error(&file.path, e))?,
            wp_id: file.wp_id,
            title: fields.title.map(|t| one_line(&t)),
            lane,
        });
    }
    Ok(Plan {
        slug: feature.slug.clone(),
        work_packages,
    })
}

/// How many events of each kind a publish queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub features: usize,
    pub work_packages: usize,
    pub first_lane_changes: usize,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.features += other.features;
        self.work_packages += other.work_packages;
        self.first_lane_changes += other.first_lane_changes;
    }
}

/// `"039"` of `039-cli-2x-readiness` (feature folders always start so).
fn feature_number(slug: &str) -> String {
    slug.chars().take(3).collect()
}

/// Queues the events of one feature and records them; `moving` is the
/// work package a `move-task` is about to move (its move is its lane
/// change, so it gets no first one).
pub fn queue_plan(
    w: &mut Writer<'_>,
    ctx: &Context,
    plan: &Plan,
    moving: Option<&str>,
) -> Result<Counts, QueueError> {
    let uuid = ctx.identity.uuid.as_str();
    let feature = FeatureCreated {
        feature_slug: plan.slug.clone(),
        feature_number: feature_number(&plan.slug),
        target_branch: ctx.git.branch.clone().unwrap_or_else(|| "main".into()),
        wp_count: plan.work_packages.len() as u64,
        extra: serde_json::Map::new(),
    };
    let lamport = w.tick();
    w.enqueue(&feature.into_event(ctx.envelope(lamport)))?;
    let mut counts = Counts {
        features: 1,
        ..Counts::default()
    };
    for wp in &plan.work_packages {
        let created = WpCreated {
            wp_id: wp.wp_id.clone(),
            title: wp.title.clone(),
            feature_slug: plan.slug.clone(),
            dependencies: wp.dependencies.clone(),
            extra: serde_json::Map::new(),
        };
        let lamport = w.tick();
        w.enqueue(&created.into_event(ctx.envelope(lamport)))?;
        counts.work_packages += 1;
    }
    for wp in &plan.work_packages {
        let Some(lane) = wp.lane.map(Lane::to_sync) else {
            continue;
        };
        if lane == SyncLane::Planned
            || moving == Some(wp.wp_id.as_str())
            || w.status_sent(uuid, &plan.slug, &wp.wp_id)?
        {
            continue;
        }
        let event = first_status(ctx, &plan.slug, &wp.wp_id, lane, w.tick());
        w.enqueue(&event)?;
        w.record_status(uuid, &plan.slug, &wp.wp_id, &event.event_id)?;
        counts.first_lane_changes += 1;
    }
    w.mark_published(uuid, &plan.slug)?;
    Ok(counts)
}

/// The first `WPStatusChanged` of a work package: from `planned` (the
/// Python client requires a lane there, never null) to its file's lane.
fn first_status(ctx: &Context, feature: &str, wp_id: &str, lane: SyncLane, lamport: u64) -> Event {
    WpStatusChanged {
        feature_slug: feature.to_string(),
        wp_id: wp_id.to_string(),
        from_lane: Some(SyncLane::Planned.as_str().to_string()),
        to_lane: lane.as_str().to_string(),
        actor: one_line(&ctx.actor),
        force: false,
        reason: Some(FIRST_STATUS_REASON.to_string()),
        execution_mode: None,
        review_ref: None,
        evidence: None,
        extra: serde_json::Map::new(),
    }
    .into_event(ctx.envelope(lamport))
}

/// What `agent tasks publish` did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub project_uuid: String,
    pub project_slug: String,
    pub features: Vec<String>,
    pub queued: Counts,
    pub queue: PathBuf,
}

/// Publishes one feature (`wanted`) or all of them.
pub fn publish(home: &Home, cwd: &Path, wanted: Option<&str>) -> Result<Published, TaskError> {
    let project = Project::find(cwd)?;
    let git = git::info(&project.root);
    let features = match wanted {
        Some(name) => vec![project.feature(Some(name), None)?],
        None => project.features()?,
    };
    if features.is_empty() {
        return Err(ProjectError::NoFeatures { root: project.root }.into());
    }
    let plans = features.iter().map(plan).collect::<Result<Vec<_>, _>>()?;
    let identity = identity::load_or_create(&project)?;
    let (team, actor) = sender(home, None);
    let ctx = Context {
        identity,
        team,
        actor,
        git,
        now: OffsetDateTime::now_utc(),
        correlation_id: ulid::Ulid::new().to_string(),
    };
    let mut queue = Queue::open(home)?;
    let queued = queue.write(0, |w| -> Result<Counts, QueueError> {
        let mut total = Counts::default();
        for plan in &plans {
            total.add(queue_plan(w, &ctx, plan, None)?);
        }
        Ok(total)
    })?;
    Ok(Published {
        project_uuid: ctx.identity.uuid,
        project_slug: ctx.identity.slug,
        features: plans.into_iter().map(|p| p.slug).collect(),
        queued,
        queue: queue.path().to_path_buf(),
    })
}
