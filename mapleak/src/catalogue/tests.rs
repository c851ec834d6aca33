use clap::ValueEnum;
use mapleak_common::ProgramKind;

use super::*;

#[test]
fn every_probe_on_the_target_has_exactly_one_row() {
    for &id in ProbeId::ALL {
        let rows = CATALOGUE
            .iter()
            .filter(|spec| spec.probes().any(|(p, _)| p == id))
            .count();
        // The calibration probe goes on mapleak itself, the tracepoints on the kernel.
        let on_target = id.kind() == ProgramKind::Uprobe && id != ProbeId::Calibrate;
        assert_eq!(rows, usize::from(on_target), "{id:?} is in {rows} rows");
    }
}

#[test]
fn every_map_implementation_has_growth_probes() {
    for map_impl in [MapImpl::Classic, MapImpl::Swiss] {
        assert!(
            specs(map_impl, ProbeGroup::Growth).next().is_some(),
            "{map_impl:?}"
        );
    }
}

#[test]
fn probes_flag_takes_the_opt_in_groups_only() {
    for group in ProbeGroup::ALL {
        let parsed = ProbeGroup::from_str(group.name(), false).ok();
        let want = group.opt_in().map(|_| group);
        assert_eq!(parsed, want, "--probes {}", group.name());
    }
    // Every group the flag lists parses back to itself.
    for group in ProbeGroup::value_variants() {
        let value = group
            .to_possible_value()
            .expect("a listed group has a value");
        assert_eq!(ProbeGroup::from_str(value.get_name(), false), Ok(*group));
    }
}

#[test]
fn every_group_with_rows_is_in_all() {
    // The plan, the session and the flags go through `ProbeGroup::ALL`: a group left out of it
    // would never be placed or attached.
    for spec in CATALOGUE {
        assert!(ProbeGroup::ALL.contains(&spec.group), "{}", spec.symbol);
    }
}
