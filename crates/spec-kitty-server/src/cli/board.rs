//! `spec-kitty-server board rebuild [--project UUID] [--check]`.

use super::admin::open_store;
use super::{BoardCommand, Failure};
use crate::config::StorageArgs;

pub(super) async fn board(command: BoardCommand, storage: &StorageArgs) -> Result<(), Failure> {
    let store = open_store(storage, super::admin::Open::MustExist).await?;
    let BoardCommand::Rebuild { project, check } = command;
    let report = crate::admin::rebuild_board(&store, project.as_deref(), check).await?;
    if let Some(uuid) = &project
        && report.projects == 0
    {
        return Err(Failure(format!("no project {uuid} on this server")));
    }
    for line in &report.differences {
        println!("{line}");
    }
    let verb = if check { "Checked" } else { "Rebuilt" };
    println!(
        "{verb} {} project(s): {} event(s), {} work package(s), {} difference(s){}.",
        report.projects,
        report.events,
        report.cards,
        report.differences.len(),
        if check || report.differences.is_empty() {
            ""
        } else {
            ", now fixed"
        }
    );
    if check && !report.differences.is_empty() {
        return Err(Failure(format!(
            "{} difference(s) between the stored board and the events; `spec-kitty-server board rebuild` fixes them",
            report.differences.len()
        )));
    }
    Ok(())
}
