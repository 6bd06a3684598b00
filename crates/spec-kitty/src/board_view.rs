//! The team board in a terminal: grouped lists per lane, like `gh pr
//! status`, with colour only when stdout is a terminal.

use spec_kitty_protocol::timestamp::ago;
use std::fmt::Write;

use spec_kitty_protocol::SyncLane;
use spec_kitty_protocol::board::{Board, Card};
use time::OffsetDateTime;

/// The lanes in workflow order, with their headings and ANSI colours.
const LANES: [(SyncLane, &str, &str); 4] = [
    (SyncLane::Planned, "Planned", "\x1b[37m"),
    (SyncLane::Doing, "Doing", "\x1b[34m"),
    (SyncLane::ForReview, "For review", "\x1b[33m"),
    (SyncLane::Done, "Done", "\x1b[32m"),
];

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    /// Terminal width in columns.
    pub width: usize,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// The whole board as text.
pub fn render(board: &Board, style: Style, now: OffsetDateTime) -> String {
    let mut out = String::new();
    let name = board
        .project_slug
        .as_deref()
        .unwrap_or(board.project_uuid.as_str());
    let counts = board.counts;
    let _ = writeln!(
        out,
        "{}  {} work packages: {} planned, {} doing, {} for review, {} done",
        style.paint(BOLD, name),
        counts.total(),
        counts.planned,
        counts.doing,
        counts.for_review,
        counts.done
    );
    if counts.total() == 0 {
        let _ = writeln!(
            out,
            "\nNo work packages on the board yet. Run `spec-kitty agent tasks publish`, then `spec-kitty sync now`."
        );
        return out;
    }
    let several_features = board.features.len() > 1;
    let title_width = style.width.saturating_sub(48).clamp(16, 60);
    for (lane, heading, colour) in LANES {
        let cards: Vec<(Option<&str>, &Card)> = board
            .features
            .iter()
            .flat_map(|f| {
                f.work_packages
                    .iter()
                    .map(move |c| (f.feature_slug.as_deref(), c))
            })
            .filter(|(_, c)| c.sync_lane() == lane)
            .collect();
        let _ = writeln!(
            out,
            "\n{} ({})",
            style.paint(&format!("{BOLD}{colour}"), heading),
            cards.len()
        );
        if cards.is_empty() {
            let _ = writeln!(out, "  {}", style.paint(DIM, "nothing here"));
        }
        for (feature, card) in cards {
            let mut line = format!(
                "  {:<6} {:<title_width$}",
                card.wp_id,
                truncate(card.title.as_deref().unwrap_or("(untitled)"), title_width)
            );
            if let Some(badge) = card.badge() {
                line.push(' ');
                line.push_str(&style.paint(RED, &format!("[{badge}]")));
            }
            let mut meta = Vec::new();
            if several_features {
                meta.push(feature.unwrap_or("(no feature)").to_string());
            }
            if let Some(actor) = &card.actor {
                meta.push(actor.clone());
            }
            if let Some(at) = &card.updated_at {
                meta.push(ago(at, now));
            }
            if !meta.is_empty() {
                line.push_str("  ");
                line.push_str(&style.paint(DIM, &meta.join(" · ")));
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec_kitty_protocol::board::{BoardFeature, Counts};

    fn card(wp: &str, lane: &str, raw: Option<&str>) -> Card {
        Card {
            wp_id: wp.into(),
            title: Some(format!("Title of {wp}")),
            lane: lane.into(),
            raw_lane: raw.map(str::to_string),
            actor: Some("alice".into()),
            updated_at: Some("2026-01-01T00:00:00+00:00".into()),
            dependencies: vec![],
            last_event_id: None,
        }
    }

    #[test]
    fn lists_every_lane_with_badges_and_no_colour_off_a_terminal() {
        let board = Board {
            project_uuid: "550e8400-e29b-41d4-a716-446655440000".into(),
            project_slug: Some("demo".into()),
            counts: Counts {
                planned: 1,
                doing: 1,
                for_review: 0,
                done: 0,
            },
            cursor: "c1.2".into(),
            features: vec![BoardFeature {
                feature_slug: Some("001-x".into()),
                work_packages: vec![
                    card("WP01", "planned", None),
                    card("WP02", "doing", Some("blocked")),
                ],
            }],
        };
        let now = spec_kitty_protocol::timestamp::parse("2026-01-01T03:00:00Z").expect("time");
        let text = render(
            &board,
            Style {
                color: false,
                width: 100,
            },
            now,
        );
        assert!(text.starts_with("demo  2 work packages"), "{text}");
        assert!(text.contains("Planned (1)\n  WP01"), "{text}");
        assert!(text.contains("WP02   Title of WP02"), "{text}");
        assert!(text.contains("[blocked]"), "{text}");
        assert!(text.contains("alice · 3h ago"), "{text}");
        assert!(text.contains("For review (0)\n  nothing here"), "{text}");
        assert!(!text.contains('\x1b'), "no colour off a terminal");
        let coloured = render(
            &board,
            Style {
                color: true,
                width: 100,
            },
            now,
        );
        assert!(coloured.contains("\x1b[1m"), "colour on a terminal");
    }
}
