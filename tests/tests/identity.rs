//! Map identity: maps freed and made again at one address are counted one by one, as many as
//! the program made, and one map reused with `clear(m)` is one map. The oracles are the
//! fixture's own counts and the runtime's growth rules.

use mapleak_tests::{Failures, Fixture, GoBuild, Report, Tracer, build, require_root, strip};
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/remade/main.go";
/// Maps of each of the fixture's loops that keep one address.
const MAPS: &str = "2000";
/// The cleared map's size, and how often it is refilled to it.
const CLEAR_N: u64 = 400;
const REFILLS: &str = "2000";

/// The line marked `// site:NAME` in the fixture's source.
fn site_line(name: &str) -> u32 {
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/remade/main.go"),
    )
    .unwrap();
    let marker = format!("// site:{name}");
    let found: Vec<usize> = src
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end().ends_with(&marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(found.len(), 1, "one {marker} in the fixture");
    found[0] as u32
}

/// The report's row for the fixture line marked `name`, if anything grew there.
fn site<'r>(report: &'r Report, name: &str) -> Option<&'r Value> {
    let line = site_line(name);
    report.summary["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["file"].as_str().unwrap().ends_with(FIXTURE) && s["line"] == line)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// One loop of the fixture, as it counted its maps: `maps NAME COUNT ADDRESSES MOVED`.
struct Made {
    name: String,
    count: u64,
    addresses: u64,
    moved: u64,
}

fn made(lines: &[String]) -> Vec<Made> {
    lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [first, name, count, addresses, moved] = f[..] else {
                return None;
            };
            (first == "maps").then(|| Made {
                name: name.to_owned(),
                count: count.parse().unwrap(),
                addresses: addresses.parse().unwrap(),
                moved: moved.parse().unwrap(),
            })
        })
        .collect()
}

/// The fixture run to its end under `mapleak trace --exact`.
fn trace(spec: &GoBuild, stripped: bool, args: &[&str]) -> (Vec<Made>, Report) {
    let mut exe = build(spec);
    if stripped {
        exe = strip(&exe);
    }
    let fixture = Fixture::start(&exe, args, &[]);
    let tracer = Tracer::attach(fixture.pid(), &[]);
    let lines = fixture.go_and_wait();
    let report = tracer.finish();
    assert_eq!(report.u64(&["events", "lost"]), 0);
    assert_eq!(report.u64(&["events", "read_errors"]), 0);
    (made(&lines), report)
}

fn check_remade(spec: &GoBuild, stripped: bool) {
    let (made, report) = trace(spec, stripped, &["remade", MAPS]);
    assert_eq!(made.len(), 3, "the fixture printed its three loops");
    let mut total = 0;
    for m in &made {
        // The fixture's premise: the maps were made again at addresses already used, and none
        // moved while it lived.
        assert_eq!(m.moved, 0, "{}: a map moved with its stack", m.name);
        assert!(
            m.addresses < m.count,
            "{}: {} maps at {} addresses: none was made at a freed one's",
            m.name,
            m.count,
            m.addresses
        );
        let row = site(&report, &m.name)
            .unwrap_or_else(|| panic!("no growth at site:{}: {}", m.name, report.summary));
        assert_eq!(u(&row["maps"]), m.count, "site:{}: {row}", m.name);
        total += m.count;
    }
    assert_eq!(
        report.u64(&["maps", "maps_seen"]),
        total,
        "{}",
        report.summary["maps"]
    );
}

/// Growths of a classic map with B = `b` whose entries go from `from` to `to`: mapassign grows
/// it when the entry it adds would put more than 8 in it and more than `load_factor_num`/2 a
/// bucket.
fn classic_grows(load_factor_num: u64, b: &mut u32, from: u64, to: u64) -> u64 {
    let mut grows = 0;
    for count in from..to {
        if count + 1 > 8 && count + 1 > load_factor_num * ((1u64 << *b) / 2) {
            *b += 1;
            grows += 1;
        }
    }
    grows
}

/// Growths of a Swiss map made on the heap, of `capacity` slots (0: no group yet), whose entries
/// go from `from` to `to`, while it is one table: its first insert allocates a group
/// (growToSmall), the ninth a 16-slot table (growToTable), and an insert into a table 7/8 full
/// doubles it (rehash).
fn swiss_grows(capacity: &mut u64, from: u64, to: u64) -> u64 {
    let mut grows = 0;
    for used in from..to {
        let full = match *capacity {
            0 => true,
            8 => used == 8,
            c => used == c * 7 / 8,
        };
        if full {
            *capacity = if *capacity == 0 { 8 } else { 2 * *capacity };
            grows += 1;
        }
    }
    assert!(*capacity <= 1024, "one table");
    grows
}

/// `first` growths to fill the map, none to refill it after each clear, `again` to fill it to
/// twice that; one map throughout, and nothing to call churn.
fn check_clear(spec: &GoBuild, stripped: bool, first: u64, again: u64) {
    let n = CLEAR_N.to_string();
    let (made, report) = trace(spec, stripped, &["clear", &n, REFILLS]);
    assert_eq!(made.len(), 1, "the fixture printed its one map");
    let first_fill = site(&report, "clear-first").expect("the first fill grew the map");
    assert_eq!(
        (u(&first_fill["grow_events"]), u(&first_fill["maps"])),
        (first, 1),
        "{first_fill}"
    );
    assert!(
        site(&report, "clear-refill").is_none(),
        "a refill to the size the map had grows nothing: {}",
        report.summary["sites"]
    );
    let grown = site(&report, "clear-grow").expect("the bigger refill grew the map");
    assert_eq!(
        (u(&grown["grow_events"]), u(&grown["maps"])),
        (again, 0),
        "the cleared map grows on as the same map: {grown}"
    );
    assert_eq!(report.u64(&["maps", "grow_events"]), first + again);
    assert_eq!(report.u64(&["maps", "maps_seen"]), 1);
    assert_eq!(
        report.summary["findings"],
        serde_json::json!([]),
        "a map reused with clear(m) is no churn"
    );
}

#[test]
fn maps_made_again_at_one_address_are_counted_as_the_program_made_them() {
    require_root();
    let classic = GoBuild::plain("remade", "1.21.13");
    let swiss = GoBuild::plain("remade", "1.27.3");
    let mut failures = Failures::new("identity");
    failures.check("go1.21.13", || check_remade(&classic, false));
    failures.check("go1.21.13 stripped", || check_remade(&classic, true));
    failures.check("go1.27.3", || check_remade(&swiss, false));
    failures.check("go1.27.3 stripped", || check_remade(&swiss, true));
    failures.assert_none();
}

#[test]
fn a_map_reused_with_clear_is_one_map() {
    require_root();
    // Go 1.21: load factor 6.0 (loadFactorNum 12).
    let mut b = 0;
    let first = classic_grows(12, &mut b, 0, CLEAR_N);
    let again = classic_grows(12, &mut b, 0, 2 * CLEAR_N);
    assert_eq!((first, again, b), (7, 1, 8));
    let mut failures = Failures::new("clear");
    failures.check("go1.21.13", || {
        check_clear(&GoBuild::plain("remade", "1.21.13"), false, first, again)
    });
    let mut capacity = 0;
    let first = swiss_grows(&mut capacity, 0, CLEAR_N);
    let again = swiss_grows(&mut capacity, 0, 2 * CLEAR_N);
    assert_eq!((first, again, capacity), (7, 1, 1024));
    failures.check("go1.27.3 stripped", || {
        check_clear(&GoBuild::plain("remade", "1.27.3"), true, first, again)
    });
    failures.assert_none();
}
