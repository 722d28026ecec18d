//! Reading a Loghub 2k sample: the raw lines, their contents and the ground truth.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use regex::Regex;

/// Log formats of the Loghub benchmark, as the logparser benchmark settings give them. Each
/// `<Field>` is a lazy match, runs of spaces match any whitespace, and the rest is
/// regular-expression syntax. The miner receives the `Content` field.
const FORMATS: &[(&str, &str)] = &[
    (
        "Android",
        "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
    ),
    ("Apache", r"\[<Time>\] \[<Level>\] <Content>"),
    (
        "BGL",
        "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    ),
    ("HDFS", "<Date> <Time> <Pid> <Level> <Component>: <Content>"),
    (
        "HPC",
        "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    ),
    (
        "Hadoop",
        r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    ),
    ("HealthApp", r"<Time>\|<Component>\|<Pid>\|<Content>"),
    (
        "Linux",
        r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    ),
    (
        "Mac",
        r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
    ),
    (
        "OpenSSH",
        r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
    ),
    (
        "OpenStack",
        r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    ),
    ("Proxifier", r"\[<Time>\] <Program> - <Content>"),
    ("Spark", "<Date> <Time> <Level> <Component>: <Content>"),
    (
        "Thunderbird",
        r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\[<PID>\])?: <Content>",
    ),
    (
        "Windows",
        "<Date> <Time>, <Level>                  <Component>    <Content>",
    ),
    (
        "Zookeeper",
        r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
    ),
];

/// One line of a sample.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The whole raw line, without its line break.
    pub(crate) raw: String,
    /// The `Content` field parsed from the raw line.
    pub(crate) content: String,
    /// The ground-truth event id.
    pub(crate) event_id: String,
    /// The ground-truth template.
    pub(crate) event_template: String,
    /// Every field of the log format, `Content` included.
    pub(crate) fields: HashMap<String, String>,
}

impl Record {
    /// Returns the `Label` field, where the format has one (BGL: `-` for a normal line).
    pub(crate) fn label(&self) -> Option<&str> {
        self.fields.get("Label").map(String::as_str)
    }

    /// Returns the raw line without its leading `Label` field, as a log stream would carry it.
    pub(crate) fn unlabelled(&self) -> &str {
        match self.label() {
            Some(label) => self
                .raw
                .strip_prefix(label)
                .unwrap_or(&self.raw)
                .trim_start(),
            None => &self.raw,
        }
    }
}

/// A Loghub 2k sample: `<dir>/<name>_2k.log` and `<dir>/<name>_2k.log_structured.csv`.
#[derive(Debug)]
pub(crate) struct Dataset {
    pub(crate) name: String,
    pub(crate) records: Vec<Record>,
    /// Lines whose parsed content differs from the `Content` column.
    pub(crate) content_mismatches: usize,
}

impl Dataset {
    /// Reads the sample in `dir`, whose file name is the dataset name.
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let name = dir
            .file_name()
            .and_then(|name| name.to_str())
            .with_context(|| format!("dataset directory has no name: {}", dir.display()))?
            .to_owned();
        let format = format_of(&name)?;
        let parser = FormatParser::new(format)?;

        let log_path = dir.join(format!("{name}_2k.log"));
        let raw = fs::read(&log_path)
            .with_context(|| format!("failed to read {}", log_path.display()))?;
        let raw = String::from_utf8_lossy(&raw);
        let truth_path = dir.join(format!("{name}_2k.log_structured.csv"));
        let truth = read_truth(&truth_path)?;

        let mut records = Vec::with_capacity(truth.len());
        let mut content_mismatches = 0;
        let mut lines = raw.lines().map(str::trim).filter(|line| !line.is_empty());
        for (row, truth) in truth.into_iter().enumerate() {
            let number = row + 1;
            let line = lines.next().with_context(|| {
                format!("{} has fewer lines than {number} rows", log_path.display())
            })?;
            let fields = parser.parse(line).with_context(|| {
                format!(
                    "line {number} of {} does not match {format:?}",
                    log_path.display()
                )
            })?;
            let content = fields.get("Content").cloned().unwrap_or_default();
            content_mismatches += usize::from(content != truth.content);
            records.push(Record {
                raw: line.to_owned(),
                content,
                event_id: truth.event_id,
                event_template: truth.event_template,
                fields,
            });
        }
        if lines.next().is_some() {
            let (log, truth) = (log_path.display(), truth_path.display());
            bail!("{log} has more lines than {truth} has rows");
        }
        Ok(Self {
            name,
            records,
            content_mismatches,
        })
    }
}

/// Looks up the log format of the dataset called `name`.
fn format_of(name: &str) -> Result<&'static str> {
    let found = FORMATS.iter().find(|(known, _)| *known == name);
    found.map(|(_, format)| *format).with_context(|| {
        let known: Vec<&str> = FORMATS.iter().map(|(known, _)| *known).collect();
        format!(
            "unknown dataset {name:?}: no log format for it; expected one of {}",
            known.join(", ")
        )
    })
}

/// One row of a structured csv.
#[derive(Debug)]
struct TruthRow {
    content: String,
    event_id: String,
    event_template: String,
}

/// Reads the `Content`, `EventId` and `EventTemplate` columns of a structured csv.
fn read_truth(path: &Path) -> Result<Vec<TruthRow>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("failed to read the header of {}", path.display()))?;
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .with_context(|| format!("{} has no {name} column", path.display()))
    };
    let content = column("Content")?;
    let event_id = column("EventId")?;
    let event_template = column("EventTemplate")?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("failed to read {}", path.display()))?;
        rows.push(TruthRow {
            content: record[content].to_owned(),
            event_id: record[event_id].to_owned(),
            event_template: record[event_template].to_owned(),
        });
    }
    Ok(rows)
}

/// A Loghub log format compiled into a regular expression.
#[derive(Debug)]
struct FormatParser {
    regex: Regex,
    fields: Vec<String>,
}

impl FormatParser {
    fn new(format: &str) -> Result<Self> {
        let field = Regex::new(r"<([^<>]+)>").expect("the field pattern is valid");
        let spaces = Regex::new(" +").expect("the spaces pattern is valid");
        let mut pattern = String::from("^");
        let mut fields = Vec::new();
        let mut last = 0;
        for captures in field.captures_iter(format) {
            let whole = captures.get(0).expect("group 0 always matches");
            pattern.push_str(&spaces.replace_all(&format[last..whole.start()], r"\s+"));
            let name = &captures[1];
            pattern.push_str(&format!("(?P<{name}>.*?)"));
            fields.push(name.to_owned());
            last = whole.end();
        }
        pattern.push_str(&spaces.replace_all(&format[last..], r"\s+"));
        pattern.push('$');
        let regex =
            Regex::new(&pattern).with_context(|| format!("invalid log format {format:?}"))?;
        Ok(Self { regex, fields })
    }

    fn parse(&self, line: &str) -> Option<HashMap<String, String>> {
        let captures = self.regex.captures(line)?;
        let fields = self
            .fields
            .iter()
            .filter_map(|name| Some((name.clone(), captures.name(name)?.as_str().to_owned())))
            .collect();
        Some(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parser_extracts_content() {
        let parser = FormatParser::new("<Date> <Time> <Pid> <Level> <Component>: <Content>")
            .expect("format compiles");
        let fields = parser
            .parse(
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block",
            )
            .expect("line matches");
        assert_eq!(fields["Component"], "dfs.DataNode$PacketResponder");
        assert_eq!(fields["Content"], "PacketResponder 1 for block");
    }

    #[test]
    fn format_parser_handles_optional_group() {
        let parser =
            FormatParser::new(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
                .expect("format compiles");
        let with_pid =
            parser.parse("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown");
        let fields = with_pid.expect("line with a pid matches");
        assert_eq!(fields["PID"], "19939");
        assert_eq!(fields["Content"], "check pass; user unknown");
        let without = parser.parse("Jun 14 15:16:01 combo kernel: Linux version 2.6");
        assert_eq!(
            without.expect("line without a pid matches")["Content"],
            "Linux version 2.6"
        );
    }
}
