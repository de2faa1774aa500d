//! The health grade at a fixed `now`: Red Hat's age windows for fixable Critical and
//! High findings, `Unknown` without severities, and when the grade drops next.

use berth_vuln::{grade, Finding, Grade, Letter, Level, Severity};
use std::time::{Duration, SystemTime};

const DAY: u64 = 86_400;

fn now() -> SystemTime {
    // 2025-01-01T00:00:00Z
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600)
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A finding published `days` before now.
fn finding(level: Level, days: u64, fixable: bool) -> Finding {
    let published = now() - Duration::from_secs(days * DAY);
    Finding {
        id: format!("X-{days}"),
        aliases: vec![],
        package: "p".into(),
        source_name: None,
        installed: "1".into(),
        fixed: fixable.then(|| "2".into()),
        severity: Severity {
            level,
            score: None,
            vector: None,
            words: None,
        },
        published: Some(humantime::format_rfc3339_seconds(published).to_string()),
    }
}

fn drop_after(days: u64, limit_days: u64) -> Option<i64> {
    Some(unix(now()) - (days * DAY) as i64 + (limit_days * DAY) as i64 + 1)
}

#[test]
fn windows_per_severity() {
    let g = |f: Vec<Finding>| grade(&f, now());
    assert_eq!(
        g(vec![]),
        Grade {
            letter: Letter::A,
            next_drop: None
        }
    );
    assert_eq!(
        g(vec![finding(Level::Critical, 3, true)]),
        Grade {
            letter: Letter::B,
            next_drop: drop_after(3, 7)
        }
    );
    assert_eq!(
        g(vec![finding(Level::Critical, 7, true)]).letter,
        Letter::B,
        "7 days is still B"
    );
    assert_eq!(g(vec![finding(Level::Critical, 8, true)]).letter, Letter::C);
    assert_eq!(
        g(vec![finding(Level::Critical, 45, true)]),
        Grade {
            letter: Letter::D,
            next_drop: drop_after(45, 90)
        }
    );
    assert_eq!(
        g(vec![finding(Level::Critical, 200, true)]),
        Grade {
            letter: Letter::E,
            next_drop: drop_after(200, 365)
        }
    );
    assert_eq!(
        g(vec![finding(Level::Critical, 366, true)]),
        Grade {
            letter: Letter::F,
            next_drop: None
        }
    );
    assert_eq!(
        g(vec![finding(Level::High, 20, true)]),
        Grade {
            letter: Letter::B,
            next_drop: drop_after(20, 30)
        }
    );
    assert_eq!(
        g(vec![finding(Level::High, 60, true)]),
        Grade {
            letter: Letter::C,
            next_drop: drop_after(60, 90)
        }
    );
    assert_eq!(
        g(vec![finding(Level::High, 200, true)]),
        Grade {
            letter: Letter::D,
            next_drop: drop_after(200, 365)
        }
    );
    assert_eq!(
        g(vec![finding(Level::High, 400, true)]).letter,
        Letter::F,
        "High never gives E"
    );
}

#[test]
fn only_fixable_critical_and_high_count() {
    let g = |f: Vec<Finding>| grade(&f, now()).letter;
    assert_eq!(
        g(vec![finding(Level::Critical, 900, false)]),
        Letter::A,
        "no fix: not an unapplied erratum"
    );
    assert_eq!(
        g(vec![
            finding(Level::Medium, 900, true),
            finding(Level::Low, 900, true)
        ]),
        Letter::A
    );
    assert_eq!(
        g(vec![
            finding(Level::Unknown, 900, true),
            finding(Level::Low, 1, true)
        ]),
        Letter::A
    );
    assert_eq!(
        g(vec![
            finding(Level::Unknown, 900, true),
            finding(Level::Unknown, 1, false)
        ]),
        Letter::Unknown
    );
}

#[test]
fn worst_finding_decides_and_next_drop_is_when_it_worsens() {
    // A Critical at 2 days (B until day 7) and a High at 25 days (B until day 30):
    // the first drop is the Critical's, in 5 days.
    let f = vec![
        finding(Level::High, 25, true),
        finding(Level::Critical, 2, true),
    ];
    assert_eq!(
        grade(&f, now()),
        Grade {
            letter: Letter::B,
            next_drop: drop_after(2, 7)
        }
    );
    // A High at 100 days (D until a year) and a Critical at 20 days (C until day 30,
    // then D): the grade stays D when the Critical crosses day 30 and drops to E at
    // its day 90.
    let f = vec![
        finding(Level::High, 100, true),
        finding(Level::Critical, 20, true),
    ];
    assert_eq!(
        grade(&f, now()),
        Grade {
            letter: Letter::D,
            next_drop: drop_after(20, 90)
        }
    );
}
