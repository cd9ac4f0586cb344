//! The FIX 4.4 data dictionary, and the validation of inbound messages against it.
//!
//! The tables come from the FIX 4.4 specification that `hotfix-dictionary` ships (every field
//! with its type and enumerated values, every message with its required fields, components
//! and repeating groups), flattened once into lookups by tag ([`fix44`]).
//!
//! [`Dictionary::validate`] applies the checks in the order FIX engines apply them, so that a
//! counterparty reads the same SessionRejectReason (373) and RefTagID (371) its own engine
//! would produce: a MsgType FIX 4.4 does not define (11); a header field after the body (14);
//! a required tag missing (1: header, then
//! trailer, then body, then each group instance, lowest tag first); then field by field,
//! header, trailer, then body in tag order: a tag given twice (13), without a value (4), in a
//! bad format (6), with a value outside its enumeration (5), unknown to FIX 4.4 (0), not
//! defined for the message type (2), and a NumInGroup that disagrees with the instances that
//! follow it (16). Repeating groups are read as FIX defines them: an instance starts at the
//! group's first field and the group ends at the first field that is not one of its members.

use std::collections::HashMap;
use std::sync::OnceLock;

use hotfix_dictionary::{Dictionary as Spec, FixDatatype, LayoutItem, LayoutItemKind};

/// Why a message fails validation: FIX's SessionRejectReason and the tag concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// SessionRejectReason (373).
    pub reason: u32,
    /// RefTagID (371), when the reason concerns one field.
    pub tag: Option<i64>,
}

impl Violation {
    fn new(reason: u32, tag: i64) -> Violation {
        Violation {
            reason,
            tag: Some(tag),
        }
    }

    /// FIX's text for the reason, as engines put it in Text (58).
    pub fn text(&self) -> &'static str {
        reason_text(self.reason)
    }
}

/// FIX 4.4's wording of SessionRejectReason `reason`.
pub fn reason_text(reason: u32) -> &'static str {
    match reason {
        0 => "Invalid tag number",
        1 => "Required tag missing",
        2 => "Tag not defined for this message type",
        3 => "Undefined Tag",
        4 => "Tag specified without a value",
        5 => "Value is incorrect (out of range) for this tag",
        6 => "Incorrect data format for value",
        7 => "Decryption problem",
        8 => "Signature problem",
        9 => "CompID problem",
        10 => "SendingTime accuracy problem",
        11 => "Invalid MsgType",
        12 => "XML Validation error",
        13 => "Tag appears more than once",
        14 => "Tag specified out of required order",
        15 => "Repeating group fields out of order",
        16 => "Incorrect NumInGroup count for repeating group",
        17 => "Non-data value includes field delimiter",
        _ => "Other",
    }
}

/// The value syntax a field's type demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Any,
    Char,
    Int,
    Float,
    Bool,
    Timestamp,
    Date,
    TimeOnly,
}

#[derive(Debug)]
struct FieldDef {
    format: Format,
    /// Space-separated values, each from the enumeration.
    multiple: bool,
    /// The enumeration, sorted; `None`: any value of the format.
    values: Option<Vec<Box<[u8]>>>,
}

/// A set of tags as a bitmap (FIX 4.4's tags are below 1000).
#[derive(Debug, Default, Clone)]
struct TagSet(Vec<u64>);

impl TagSet {
    fn insert(&mut self, tag: u32) {
        let (w, b) = ((tag / 64) as usize, tag % 64);
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << b;
    }

    fn contains(&self, tag: i64) -> bool {
        let Ok(tag) = u32::try_from(tag) else {
            return false;
        };
        self.0
            .get((tag / 64) as usize)
            .is_some_and(|w| w & (1 << (tag % 64)) != 0)
    }
}

/// The fields of a message body or of one group instance.
#[derive(Debug, Default)]
struct Scope {
    allowed: TagSet,
    /// Required tags, ascending.
    required: Vec<u32>,
    /// NumInGroup tag → its group.
    groups: HashMap<u32, Group>,
}

#[derive(Debug)]
struct Group {
    /// The first field of every instance.
    delimiter: u32,
    scope: Scope,
}

/// The FIX 4.4 dictionary, flattened for validation.
#[derive(Debug)]
pub struct Dictionary {
    fields: Vec<Option<FieldDef>>,
    header: Scope,
    trailer: Scope,
    messages: HashMap<Box<[u8]>, Scope>,
}

/// The FIX 4.4 dictionary, built on first use (a few milliseconds).
pub fn fix44() -> &'static Dictionary {
    static DICT: OnceLock<Dictionary> = OnceLock::new();
    DICT.get_or_init(|| Dictionary::from_spec(&Spec::fix44()))
}

fn format_of(t: FixDatatype) -> Format {
    match t {
        FixDatatype::Char => Format::Char,
        FixDatatype::Boolean => Format::Bool,
        FixDatatype::Int
        | FixDatatype::Length
        | FixDatatype::NumInGroup
        | FixDatatype::SeqNum
        | FixDatatype::TagNum
        | FixDatatype::DayOfMonth => Format::Int,
        FixDatatype::Float
        | FixDatatype::Amt
        | FixDatatype::Price
        | FixDatatype::PriceOffset
        | FixDatatype::Qty
        | FixDatatype::Percentage => Format::Float,
        FixDatatype::UtcTimestamp => Format::Timestamp,
        FixDatatype::UtcDateOnly => Format::Date,
        FixDatatype::UtcTimeOnly => Format::TimeOnly,
        _ => Format::Any,
    }
}

impl Dictionary {
    fn from_spec(spec: &Spec) -> Dictionary {
        let mut fields: Vec<Option<FieldDef>> = Vec::new();
        for f in spec.fields() {
            let tag = f.tag().get() as usize;
            if fields.len() <= tag {
                fields.resize_with(tag + 1, || None);
            }
            let dt = f.fix_datatype();
            let values = f.enums().map(|e| {
                let mut v: Vec<Box<[u8]>> = e.map(|x| x.value().as_bytes().into()).collect();
                v.sort();
                v
            });
            fields[tag] = Some(FieldDef {
                format: format_of(dt),
                multiple: matches!(
                    dt,
                    FixDatatype::MultipleCharValue | FixDatatype::MultipleStringValue
                ),
                values,
            });
        }
        let scope_of = |items: Vec<LayoutItem<'_>>| {
            let mut s = Scope::default();
            add_items(&items, true, &mut s);
            s.required.sort_unstable();
            s.required.dedup();
            s
        };
        let component = |name: &str| {
            spec.component_by_name(name)
                .map(|c| scope_of(c.items().collect()))
                .unwrap_or_default()
        };
        let header = component("StandardHeader");
        let trailer = component("StandardTrailer");
        let messages = spec
            .messages()
            .iter()
            .map(|m| {
                (
                    m.msg_type().as_bytes().into(),
                    scope_of(m.layout().collect()),
                )
            })
            .collect();
        Dictionary {
            fields,
            header,
            trailer,
            messages,
        }
    }

    /// True when FIX 4.4 defines message type `t`.
    pub fn has_message(&self, t: &[u8]) -> bool {
        self.messages.contains_key(t)
    }

    fn field(&self, tag: i64) -> Option<&FieldDef> {
        usize::try_from(tag)
            .ok()
            .and_then(|t| self.fields.get(t))
            .and_then(Option::as_ref)
    }

    fn is_header(&self, tag: i64) -> bool {
        self.header.allowed.contains(tag)
    }

    fn is_trailer(&self, tag: i64) -> bool {
        self.trailer.allowed.contains(tag)
    }

    /// Checks a framed message (see `frame::check`). `Err(None)`: a field is not `tag=value`
    /// with a numeric tag (a garbled message, to be ignored like a framing error).
    pub fn validate(&self, raw: &[u8]) -> Result<(), Option<Violation>> {
        let all = signed_fields(raw).ok_or(None)?;
        let msg_type = all.iter().find(|(t, _)| *t == 35).map_or(&b""[..], |f| f.1);
        let scope = self.messages.get(msg_type);
        if scope.is_none() {
            return Err(Some(Violation {
                reason: 11,
                tag: None,
            }));
        }
        let parsed = self.parse(&all, scope);
        if let Some(tag) = parsed.out_of_order {
            return Err(Some(Violation::new(14, tag)));
        }
        self.required(&self.header, &parsed.header)?;
        self.required(&self.trailer, &parsed.trailer)?;
        if let Some(scope) = scope {
            self.required_in(scope, &parsed.body)?;
        }
        self.iterate(&parsed.header, None)?;
        self.iterate(&parsed.trailer, None)?;
        if let Some(scope) = scope {
            self.iterate_instance(scope, &parsed.body)?;
        }
        Ok(())
    }

    fn parse<'a>(&self, all: &[(i64, &'a [u8])], scope: Option<&Scope>) -> Parsed<'a> {
        #[derive(PartialEq)]
        enum Part {
            Header,
            Body,
            Trailer,
        }
        let mut p = Parsed::default();
        let mut part = Part::Header;
        let mut i = 0;
        while let Some(&(tag, v)) = all.get(i) {
            i += 1;
            if self.is_header(tag) {
                if part != Part::Header && p.out_of_order.is_none() {
                    p.out_of_order = Some(tag);
                }
                p.header.push((tag, v));
                continue;
            }
            if self.is_trailer(tag) {
                part = Part::Trailer;
                p.trailer.push((tag, v));
                continue;
            }
            if part == Part::Trailer && p.out_of_order.is_none() {
                p.out_of_order = Some(tag);
            }
            part = Part::Body;
            p.body.fields.push((tag, v));
            if let Some((count, g)) = scope.and_then(|s| group_of(s, tag)) {
                i = parse_group(all, i, count, g, &mut p.body.groups);
            }
        }
        p
    }

    fn required(&self, scope: &Scope, fields: &[(i64, &[u8])]) -> Result<(), Option<Violation>> {
        match scope
            .required
            .iter()
            .find(|&&t| !fields.iter().any(|f| f.0 == i64::from(t)))
        {
            Some(&t) => Err(Some(Violation::new(1, i64::from(t)))),
            None => Ok(()),
        }
    }

    fn required_in(&self, scope: &Scope, inst: &Instance<'_>) -> Result<(), Option<Violation>> {
        self.required(scope, &inst.fields)?;
        for (count, instances) in &inst.groups {
            if let Some(g) = scope.groups.get(count) {
                for i in instances {
                    self.required_in(&g.scope, i)?;
                }
            }
        }
        Ok(())
    }

    fn iterate_instance(
        &self,
        scope: &Scope,
        inst: &Instance<'_>,
    ) -> Result<(), Option<Violation>> {
        self.iterate(&inst.fields, Some((scope, inst)))?;
        for (count, instances) in &inst.groups {
            if let Some(g) = scope.groups.get(count) {
                for i in instances {
                    self.iterate_instance(&g.scope, i)?;
                }
            }
        }
        Ok(())
    }

    /// Field checks in tag order; `body`: the scope the fields must belong to, and the
    /// instance whose group counts are compared.
    fn iterate(
        &self,
        fields: &[(i64, &[u8])],
        body: Option<(&Scope, &Instance<'_>)>,
    ) -> Result<(), Option<Violation>> {
        let mut sorted: Vec<(i64, &[u8])> = fields.to_vec();
        sorted.sort_by_key(|f| f.0);
        let mut last = None;
        for &(tag, value) in &sorted {
            if last == Some(tag) {
                return Err(Some(Violation::new(13, tag)));
            }
            last = Some(tag);
            if value.is_empty() {
                return Err(Some(Violation::new(4, tag)));
            }
            let Some(def) = self.field(tag) else {
                return Err(Some(Violation::new(0, tag)));
            };
            if !format_ok(def, value) {
                return Err(Some(Violation::new(6, tag)));
            }
            // MsgType's own check is the one above (373=11), not its enumeration.
            if tag != 35 && !value_ok(def, value) {
                return Err(Some(Violation::new(5, tag)));
            }
            let Some((scope, inst)) = body else {
                continue;
            };
            if !scope.allowed.contains(tag) {
                return Err(Some(Violation::new(2, tag)));
            }
            if let Ok(count) = u32::try_from(tag) {
                if scope.groups.contains_key(&count) {
                    let found = inst
                        .groups
                        .iter()
                        .find(|g| g.0 == count)
                        .map_or(0, |g| g.1.len());
                    let declared = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<usize>().ok());
                    if declared != Some(found) {
                        return Err(Some(Violation::new(16, tag)));
                    }
                }
            }
        }
        Ok(())
    }
}

fn group_of(scope: &Scope, tag: i64) -> Option<(u32, &Group)> {
    let t = u32::try_from(tag).ok()?;
    scope.groups.get(&t).map(|g| (t, g))
}

/// One message body or group instance as read.
#[derive(Debug, Default)]
struct Instance<'a> {
    fields: Vec<(i64, &'a [u8])>,
    /// NumInGroup tag → the instances that followed it.
    groups: Vec<(u32, Vec<Instance<'a>>)>,
}

#[derive(Debug, Default)]
struct Parsed<'a> {
    header: Vec<(i64, &'a [u8])>,
    trailer: Vec<(i64, &'a [u8])>,
    body: Instance<'a>,
    /// The first header field after the body, or body field after the trailer.
    out_of_order: Option<i64>,
}

/// Reads the instances of group `g` from `all[i..]`; returns where the group ends.
fn parse_group<'a>(
    all: &[(i64, &'a [u8])],
    mut i: usize,
    count: u32,
    g: &Group,
    out: &mut Vec<(u32, Vec<Instance<'a>>)>,
) -> usize {
    let mut instances = Vec::new();
    let mut cur: Option<Instance<'a>> = None;
    while let Some(&(tag, v)) = all.get(i) {
        if tag == i64::from(g.delimiter) {
            instances.extend(cur.take());
            cur = Some(Instance::default());
        } else if !g.scope.allowed.contains(tag) {
            break;
        }
        let Some(c) = cur.as_mut() else {
            break;
        };
        c.fields.push((tag, v));
        i += 1;
        if let Some((n, inner)) = group_of(&g.scope, tag) {
            i = parse_group(all, i, n, inner, &mut c.groups);
        }
    }
    instances.extend(cur);
    out.push((count, instances));
    i
}

fn add_items(items: &[LayoutItem<'_>], required: bool, scope: &mut Scope) {
    for item in items {
        let req = required && item.required();
        match item.kind() {
            LayoutItemKind::Field(f) => {
                let t = f.tag().get();
                scope.allowed.insert(t);
                if req {
                    scope.required.push(t);
                }
            }
            LayoutItemKind::Component(c) => {
                let inner: Vec<LayoutItem<'_>> = c.items().collect();
                add_items(&inner, req, scope);
            }
            LayoutItemKind::Group(count, members) => {
                let t = count.tag().get();
                scope.allowed.insert(t);
                if req {
                    scope.required.push(t);
                }
                let mut inner = Scope::default();
                add_items(&members, true, &mut inner);
                inner.required.sort_unstable();
                inner.required.dedup();
                if let Some(delimiter) = first_tag(&members) {
                    scope.groups.insert(
                        t,
                        Group {
                            delimiter,
                            scope: inner,
                        },
                    );
                }
            }
        }
    }
}

fn first_tag(items: &[LayoutItem<'_>]) -> Option<u32> {
    let first = items.first()?;
    match first.kind() {
        LayoutItemKind::Field(f) => Some(f.tag().get()),
        LayoutItemKind::Group(count, _) => Some(count.tag().get()),
        LayoutItemKind::Component(c) => {
            let inner: Vec<LayoutItem<'_>> = c.items().collect();
            first_tag(&inner)
        }
    }
}

/// The fields of a framed message with their tags read as signed numbers (`-1=x` is an
/// invalid tag, not garbage); `None` when a field is not `digits=value␁`.
pub fn signed_fields(raw: &[u8]) -> Option<Vec<(i64, &[u8])>> {
    let mut out = Vec::with_capacity(32);
    for f in raw.split(|&b| b == super::frame::SOH) {
        if f.is_empty() {
            continue;
        }
        let eq = f.iter().position(|&b| b == b'=')?;
        let (tag, value) = (&f[..eq], &f[eq + 1..]);
        let (neg, digits) = match tag {
            [b'-', rest @ ..] => (true, rest),
            _ => (false, tag),
        };
        if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
        out.push((if neg { -n } else { n }, value));
    }
    Some(out)
}

fn format_ok(def: &FieldDef, v: &[u8]) -> bool {
    match def.format {
        Format::Any => true,
        Format::Char => v.len() == 1 || def.multiple,
        Format::Bool => v == b"Y" || v == b"N",
        Format::Int => {
            let d = v.strip_prefix(b"-").unwrap_or(v);
            !d.is_empty() && d.iter().all(u8::is_ascii_digit)
        }
        Format::Float => {
            let d = v.strip_prefix(b"-").unwrap_or(v);
            let dots = d.iter().filter(|&&c| c == b'.').count();
            dots <= 1
                && d.iter().any(u8::is_ascii_digit)
                && d.iter().all(|c| c.is_ascii_digit() || *c == b'.')
        }
        Format::Date => date_ok(v),
        Format::TimeOnly => time_ok(v),
        Format::Timestamp => v.len() > 9 && v[8] == b'-' && date_ok(&v[..8]) && time_ok(&v[9..]),
    }
}

/// `YYYYMMDD` with a month and day that exist.
fn date_ok(v: &[u8]) -> bool {
    if v.len() != 8 || !v.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = |a: usize, b: usize| {
        v[a..b]
            .iter()
            .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'))
    };
    crate::civil::days_from_civil(n(0, 4), n(4, 6), n(6, 8)).is_some()
}

/// `HH:MM:SS` with optional `.` and 1 to 9 digits.
fn time_ok(v: &[u8]) -> bool {
    if v.len() < 8 || v[2] != b':' || v[5] != b':' {
        return false;
    }
    let two = |a: usize| v[a].is_ascii_digit() && v[a + 1].is_ascii_digit();
    let num = |a: usize| u32::from(v[a] - b'0') * 10 + u32::from(v[a + 1] - b'0');
    if !(two(0) && two(3) && two(6)) || num(0) > 23 || num(3) > 59 || num(6) > 60 {
        return false;
    }
    match &v[8..] {
        [] => true,
        [b'.', frac @ ..] => (1..=9).contains(&frac.len()) && frac.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn value_ok(def: &FieldDef, v: &[u8]) -> bool {
    let Some(values) = &def.values else {
        return true;
    };
    let one = |x: &[u8]| values.binary_search_by(|e| e.as_ref().cmp(x)).is_ok();
    if def.multiple {
        v.split(|&b| b == b' ').all(|x| !x.is_empty() && one(x))
    } else {
        one(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> Vec<u8> {
        crate::fix::frame::tests::frame(body)
    }

    fn check(body: &str) -> Result<(), Option<Violation>> {
        fix44().validate(&msg(body))
    }

    const HB: &str = "35=0|34=2|49=A|52=20261129-10:00:00.000|56=B|";

    #[test]
    fn the_dictionary_holds_fix44() {
        let d = fix44();
        for t in [&b"0"[..], b"A", b"D", b"V", b"W", b"X", b"Y", b"j", b"BH"] {
            assert!(d.has_message(t), "{}", String::from_utf8_lossy(t));
        }
        assert!(!d.has_message(b"ZZ"));
        let x = &d.messages[&b"X"[..]];
        let entries = &x.groups[&268];
        assert_eq!(entries.delimiter, 279);
        assert!(entries.scope.allowed.contains(270));
    }

    #[test]
    fn a_valid_message_passes() {
        assert_eq!(check(HB), Ok(()));
        let x = "35=X|34=2|49=A|52=20261129-10:00:00.000|56=B|268=2|279=0|269=0|55=EURUSD|270=1.08|271=1000000|279=2|269=1|55=EURUSD|";
        assert_eq!(check(x), Ok(()));
    }

    #[test]
    fn each_reason_names_its_tag() {
        let v = |r, t| Err(Some(Violation::new(r, t)));
        assert_eq!(check(&format!("{HB}999=HI|")), v(0, 999));
        assert_eq!(check(&format!("{HB}-1=HI|")), v(0, -1));
        assert_eq!(check("35=0|34=2|49=A|52=20261129-10:00:00.000|"), v(1, 56));
        assert_eq!(check(&format!("{HB}55=MSFT|")), v(2, 55));
        assert_eq!(
            check("35=0|34=2|49=A|52=20261129-10:00:00.000|56=|"),
            v(4, 56)
        );
        let nos = "35=D|34=2|49=A|52=20261129-10:00:00.000|56=B|11=ID|40=1|54=1|55=INTC|60=20261129-10:00:00|";
        assert_eq!(check(&format!("{nos}21=4|")), v(5, 21));
        assert_eq!(check(&format!("{nos}38=+200.00|")), v(6, 38));
        assert_eq!(check(&format!("{nos}40=2|")), v(13, 40));
        assert_eq!(
            check("35=D|11=ID|34=2|49=A|52=20261129-10:00:00.000|56=B|40=1|54=1|55=INTC|60=20261129-10:00:00|"),
            v(14, 34)
        );
        assert_eq!(
            check(&format!("{nos}386=3|336=PRE-OPEN|336=AFTER-HOURS|")),
            v(16, 386)
        );
        assert_eq!(check(&format!("{nos}126=20040415|")), v(6, 126));
        assert_eq!(check(&format!("{nos}454=0|")), Ok(()));
        assert_eq!(
            check("35=*|34=2|49=A|52=20261129-10:00:00.000|56=B|"),
            Err(Some(Violation {
                reason: 11,
                tag: None
            }))
        );
    }

    #[test]
    fn garbled_tags_are_not_violations() {
        assert_eq!(fix44().validate(b"8=FIX.4.4\x01x=1\x01"), Err(None));
    }
}
