//! `FWP_FILTER_ENUM_TYPE` (§11.4): how an enumeration template's conditions select filters.
//!
//! Read a condition list as the set of incoming-value vectors it matches: a product over the
//! layer's fields, each field restricted to what its conditions accept (OR inside a group, AND
//! across groups, §8.5); a field without conditions is unrestricted. With `T` the template's set
//! and `F` a filter's:
//!
//! * `FWP_FILTER_ENUM_OVERLAPPING` (1) keeps a filter when `F ∩ T ≠ ∅`: it matches some traffic
//!   the template describes.
//! * `FWP_FILTER_ENUM_FULLY_CONTAINED` (0) keeps a filter when `T ⊆ F` (and `T ∩ F ≠ ∅`): the
//!   filter matches *all* the traffic the template describes. This is the reading of the
//!   current fwptypes.h reference ("filters that fully contain the enum conditions"); the older
//!   Windows Embedded text says the opposite inclusion ("fully contained within"). Both agree that
//!   OVERLAPPING returns a superset of FULLY_CONTAINED, which this module guarantees.
//!
//! Per field the comparison is exact when both sides are interval sets over one ordered type
//! (integers, IPv4 masks, IPv6 prefixes, MACs: EQUAL, NOT_EQUAL, GREATER…, RANGE), or when the
//! template's conditions on the field are all EQUAL to plain values (a set of points, compared
//! with the filter's own matcher: strings, blobs such as ALE_APP_ID, SIDs, flags fields).
//! Otherwise (for example a FLAGS_ANY_SET or PREFIX template against a filter's PREFIX
//! condition) containment is decided syntactically (the filter's group holds the template's
//! conditions) and overlap is assumed unless shown otherwise: OVERLAPPING may then return a
//! filter that cannot actually match, FULLY_CONTAINED never returns one that does not contain.

use std::collections::BTreeMap;

use crate::catalogue::{self, LayerDef};
use crate::condition::{Condition, ConditionSpec, MatchType};
use crate::index::group_intervals;
use crate::status::FwpError;
use crate::value::{ConditionValue, Value};

/// `FWP_FILTER_ENUM_TYPE`: how template conditions are compared with a filter's (§11.4).
///
/// A condition list stands for the traffic it matches. OVERLAPPING keeps the filters matching
/// some of the template's traffic, FULLY_CONTAINED those matching all of it (the fwptypes.h
/// wording; the Windows Embedded page says the opposite inclusion). Exact for interval-typed
/// fields (integers, address masks and prefixes, MACs) and for templates of EQUAL values;
/// otherwise containment is syntactic and overlap assumed (`docs/api.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum FilterEnumType {
    /// FWP_FILTER_ENUM_FULLY_CONTAINED (0): the filter matches all traffic the template describes.
    #[default]
    FullyContained = 0,
    /// FWP_FILTER_ENUM_OVERLAPPING (1): the filter matches some traffic the template describes.
    Overlapping = 1,
}

impl FilterEnumType {
    /// From WFP's number; `None` for FWP_FILTER_ENUM_TYPE_MAX and above.
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::FullyContained),
            1 => Some(Self::Overlapping),
            _ => None,
        }
    }
}

/// Template conditions bound to the template's layer, one OR group per field.
#[derive(Debug)]
pub(super) struct TemplateConditions {
    enum_type: FilterEnumType,
    /// Field index → the template's conditions on it (distinct, OR-ed).
    fields: BTreeMap<u16, Vec<Condition>>,
    layer: &'static LayerDef,
}

/// What one field contributes.
#[derive(Clone, Copy)]
struct Relation {
    /// `T_f ⊆ F_f` (proved).
    contained: bool,
    /// `T_f ∩ F_f ≠ ∅` (or not disproved).
    overlaps: bool,
}

impl TemplateConditions {
    /// Binds `specs` to `layer` (each must be valid there, like a filter's) and refuses repeated
    /// conditions (FWP_E_DUPLICATE_CONDITION, as the template's documentation requires).
    pub(super) fn bind(
        layer: &'static LayerDef,
        specs: &[ConditionSpec],
        enum_type: FilterEnumType,
    ) -> Result<Self, FwpError> {
        let mut fields: BTreeMap<u16, Vec<Condition>> = BTreeMap::new();
        for spec in specs {
            let c = Condition::bind(layer, spec)?;
            let group = fields.entry(c.field_index).or_default();
            if group.contains(&c) {
                let name = catalogue::condition(c.field).map_or("?", |d| d.name);
                return Err(FwpError::DuplicateCondition(name.to_string()));
            }
            group.push(c);
        }
        Ok(Self {
            enum_type,
            fields,
            layer,
        })
    }

    /// Whether the filter with `conditions` is selected.
    pub(super) fn selects(&self, conditions: &[Condition]) -> bool {
        let mut contained = true;
        let mut overlaps = true;
        for (field, template) in &self.fields {
            let groups: Vec<&[Condition]> = conditions
                .chunk_by(|a, b| a.field_index == b.field_index)
                .filter(|g| g.first().is_some_and(|c| c.field_index == *field))
                .collect();
            let r = self.relate(*field, template, &groups);
            contained &= r.contained;
            overlaps &= r.overlaps;
        }
        // A filter restricting a field the template leaves open cannot contain the template.
        contained &= conditions
            .iter()
            .all(|c| self.fields.contains_key(&c.field_index));
        match self.enum_type {
            FilterEnumType::Overlapping => overlaps,
            FilterEnumType::FullyContained => contained && overlaps,
        }
    }

    fn relate(&self, field: u16, template: &[Condition], groups: &[&[Condition]]) -> Relation {
        if groups.is_empty() {
            // The filter leaves the field open.
            return Relation {
                contained: true,
                overlaps: true,
            };
        }
        let data_type = self.layer.fields[usize::from(field)].data_type;
        let exact = group_intervals(template, data_type).and_then(|t| {
            let f = groups.iter().try_fold(vec![(0, u128::MAX)], |acc, g| {
                group_intervals(g, data_type).map(|s| intersect(&acc, &s))
            })?;
            Some(Relation {
                contained: intersect(&t, &f) == t,
                overlaps: !intersect(&t, &f).is_empty(),
            })
        });
        exact
            .or_else(|| points(template).map(|p| relate_points(&p, groups)))
            .unwrap_or_else(|| Relation {
                contained: groups
                    .iter()
                    .all(|g| template.iter().all(|c| g.contains(c))),
                overlaps: true,
            })
    }
}

/// The template's values when every condition is EQUAL to a plain value.
fn points(template: &[Condition]) -> Option<Vec<&Value>> {
    template
        .iter()
        .map(|c| match (&c.value, c.match_type) {
            (ConditionValue::Value(Value::SecurityDescriptor(_)), _) => None,
            (ConditionValue::Value(v), MatchType::Equal) => Some(v),
            _ => None,
        })
        .collect()
}

fn relate_points(points: &[&Value], groups: &[&[Condition]]) -> Relation {
    let hit = |v: &Value| groups.iter().all(|g| g.iter().any(|c| c.matches_value(v)));
    Relation {
        contained: points.iter().all(|v| hit(v)),
        overlaps: points.iter().any(|v| hit(v)),
    }
}

/// Intersection of two sorted, disjoint interval lists.
fn intersect(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while let (Some(&(alo, ahi)), Some(&(blo, bhi))) = (a.get(i), b.get(j)) {
        let (lo, hi) = (alo.max(blo), ahi.min(bhi));
        if lo <= hi {
            out.push((lo, hi));
        }
        if ahi < bhi {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersect_of_interval_lists() {
        let a = [(0, 10), (20, 30)];
        let b = [(5, 25)];
        assert_eq!(intersect(&a, &b), vec![(5, 10), (20, 25)]);
        assert_eq!(intersect(&a, &[(11, 19)]), Vec::new());
        assert_eq!(intersect(&[(0, u128::MAX)], &a), a.to_vec());
    }

    #[test]
    fn enum_type_numbers_are_wfps() {
        assert_eq!(
            FilterEnumType::from_u32(0),
            Some(FilterEnumType::FullyContained)
        );
        assert_eq!(
            FilterEnumType::from_u32(1),
            Some(FilterEnumType::Overlapping)
        );
        assert_eq!(FilterEnumType::from_u32(2), None);
    }
}
