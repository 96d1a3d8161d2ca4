//! A tiny checker of the OpenMetrics text format 1.0: every line is a `# HELP`, `# TYPE`,
//! `# UNIT` or a sample with a valid name, well-escaped labels and a number; a family's `# TYPE`
//! comes once, before its samples, which carry the suffixes of its type (`_total` for counters,
//! `_info` for info, `_bucket`/`_sum`/`_count` for histograms); histogram buckets are cumulative
//! and end with `+Inf` = `_count`; the text ends with `# EOF`.

use std::collections::{HashMap, HashSet};

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the sample with exactly these labels (in any order).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
    }

    /// As `get`, 0 when absent (a counter not yet created).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// `{a="x",b="y"}` from the start of `s`; returns the labels and the rest after `}`.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_name(name) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or }".into());
        }
    }
}

/// The sample-name suffixes of each type.
const SUFFIXES: [(&str, &str); 5] = [
    ("counter", "_total"),
    ("info", "_info"),
    ("histogram", "_bucket"),
    ("histogram", "_sum"),
    ("histogram", "_count"),
];

/// Checks `text` line by line; the samples, or the first problem with its line number.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut seen_samples: HashSet<String> = HashSet::new();
    let mut scrape = Scrape::default();
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the text does not end with # EOF")?;
    for (n, line) in body.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !valid_name(name) || !helped.insert(name.to_owned()) {
                return Err(err("bad or repeated HELP".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_name(name)
                || !["counter", "gauge", "histogram", "info", "unknown"].contains(&kind)
                || parts.next().is_some()
            {
                return Err(err("bad TYPE".into()));
            }
            if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(err("repeated TYPE".into()));
            }
            if seen_samples.contains(name) {
                return Err(err("TYPE after the family's samples".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# UNIT ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !types.contains_key(name) || !name.ends_with(rest.split(' ').nth(1).unwrap_or("?")) {
                return Err(err("UNIT without its TYPE, or not the name's suffix".into()));
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(err("unknown comment (EOF before the end?)".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        // The family a sample belongs to: the name less the suffix its type gives it.
        let family = SUFFIXES
            .iter()
            .find_map(|(kind, suffix)| {
                name.strip_suffix(suffix)
                    .filter(|base| types.get(*base).is_some_and(|k| k == kind))
            })
            .unwrap_or(name);
        if types
            .get(family)
            .is_some_and(|k| k == "counter" || k == "info")
            && family == name
        {
            return Err(err("counter or info sample without its suffix".into()));
        }
        if !types.contains_key(family) {
            return Err(err("sample without a TYPE".into()));
        }
        seen_samples.insert(family.to_owned());
        scrape.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&scrape, &types)?;
    Ok(scrape)
}

fn check_histograms(scrape: &Scrape, types: &HashMap<String, String>) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, k)| *k == "histogram") {
        let bucket = format!("{family}_bucket");
        // Group buckets by their labels other than `le`.
        let mut series: HashMap<Labels, Vec<(f64, f64)>> = HashMap::new();
        for s in scrape.samples.iter().filter(|s| s.name == bucket) {
            let le = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or(format!("{bucket} without le"))?;
            let others: Vec<_> = s
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            series
                .entry(others)
                .or_default()
                .push((parse_value(&le.1)?, s.value));
        }
        for (labels, buckets) in series {
            let mut last = (f64::NEG_INFINITY, 0.0);
            for &(le, count) in &buckets {
                if le <= last.0 || count < last.1 {
                    return Err(format!(
                        "{bucket}{labels:?}: buckets not increasing/cumulative"
                    ));
                }
                last = (le, count);
            }
            if last.0 != f64::INFINITY {
                return Err(format!("{bucket}{labels:?}: no +Inf bucket"));
            }
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let count = scrape
                .get(&format!("{family}_count"), &pairs)
                .ok_or(format!("{family}_count missing"))?;
            if count != last.1 {
                return Err(format!(
                    "{family}: +Inf bucket {} != _count {count}",
                    last.1
                ));
            }
            scrape
                .get(&format!("{family}_sum"), &pairs)
                .ok_or(format!("{family}_sum missing"))?;
        }
    }
    Ok(())
}

#[test]
fn the_checker_accepts_good_text_and_refuses_bad() {
    let good = "# HELP a A.\n# TYPE a counter\na_total{x=\"q\\\"\\n\\\\\"} 3\n\
                # TYPE h_seconds histogram\n# UNIT h_seconds seconds\n\
                h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n\
                h_seconds_sum 3.5\nh_seconds_count 2\n# TYPE b info\nb_info{version=\"1\"} 1\n# EOF\n";
    let s = parse(good).unwrap();
    assert_eq!(s.get("a_total", &[("x", "q\"\n\\")]), Some(3.0));
    assert_eq!(s.get("b_info", &[("version", "1")]), Some(1.0));
    for bad in [
        "# TYPE a counter\na_total 1\n",  // no EOF
        "a_total 1\n# EOF\n",             // no TYPE
        "# TYPE a counter\na 1\n# EOF\n", // counter without _total
        "# TYPE a counter\na_total{x=\"unterminated} 1\n# EOF\n",
        "# TYPE a counter\na_total{x=\"\\t\"} 1\n# EOF\n", // bad escape
        "# TYPE a counter\na_total one\n# EOF\n",          // bad value
        "# TYPE a counter\n# EOF\na_total 1\n# EOF\n",     // a sample after EOF
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n# EOF\n", // no +Inf
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}
