//! Tests on real Loghub 2k samples, read from the shared data directory at test time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aro_logmine::{AnomalyReason, Miner, MinerConfig, Scorer, ScorerConfig, group_accuracy};

/// One row of a structured sample: the parsed content and the true event id.
struct Row {
    content: String,
    event_id: String,
}

fn loghub_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/loghub")
}

/// Reads `NAME_2k.log_structured.csv`, or returns `None` after saying why the test is skipped.
fn read_sample(name: &str) -> Option<Vec<Row>> {
    let path = loghub_dir()
        .join(name)
        .join(format!("{name}_2k.log_structured.csv"));
    if !path.exists() {
        eprintln!("skipping: Loghub sample not found at {}", path.display());
        return None;
    }
    let mut reader = csv::Reader::from_path(&path).expect("the sample csv opens");
    let headers = reader
        .headers()
        .expect("the sample csv has a header")
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header == name)
            .expect("column exists")
    };
    let (content, event_id) = (column("Content"), column("EventId"));
    let rows = reader
        .records()
        .map(|record| {
            let record = record.expect("the sample csv parses");
            Row {
                content: record[content].to_owned(),
                event_id: record[event_id].to_owned(),
            }
        })
        .collect();
    Some(rows)
}

/// Mines the rows with a default miner and returns it with its group accuracy.
fn mine(rows: &[Row]) -> (Miner, f64) {
    let mut miner = Miner::new(MinerConfig::default()).expect("default config is valid");
    let predicted: Vec<u64> = rows
        .iter()
        .map(|row| miner.add(&row.content).template_id.0)
        .collect();
    let truth: Vec<&str> = rows.iter().map(|row| row.event_id.as_str()).collect();
    let accuracy = group_accuracy(&truth, &predicted);
    (miner, accuracy)
}

#[test]
fn hdfs_sample_groups_into_true_templates() {
    let Some(rows) = read_sample("HDFS") else {
        return;
    };
    let (miner, accuracy) = mine(&rows);
    assert!(
        accuracy >= 0.99,
        "HDFS group accuracy {accuracy} is below 0.99"
    );
    assert_eq!(miner.template_count(), 14);
    let texts: Vec<&str> = miner.templates().map(|template| template.text).collect();
    assert!(
        texts.contains(&"PacketResponder <*> for block blk_<*> terminating"),
        "{texts:#?}"
    );
    assert!(
        texts.contains(&"BLOCK* ask <*> to delete blk_<*>"),
        "{texts:#?}"
    );
}

#[test]
fn loghub_samples_stay_above_accuracy_floors() {
    // Floors sit about a point below the accuracy measured when they were set, so that a change
    // that costs accuracy on any sample fails here.
    let floors = [
        ("Android", 0.93),
        ("Apache", 0.99),
        ("BGL", 0.98),
        ("HDFS", 0.99),
        ("HPC", 0.98),
        ("Hadoop", 0.97),
        ("Linux", 0.80),
        ("Mac", 0.92),
        ("OpenStack", 0.99),
        ("Proxifier", 0.52),
        ("Windows", 0.98),
    ];
    let mut total = 0.0;
    for (name, floor) in floors {
        let Some(rows) = read_sample(name) else {
            return;
        };
        let (_, accuracy) = mine(&rows);
        assert!(
            accuracy >= floor,
            "{name} group accuracy {accuracy} is below {floor}"
        );
        total += accuracy;
    }
    let mean = total / floors.len() as f64;
    assert!(mean >= 0.92, "mean group accuracy {mean} is below 0.92");
}

#[test]
fn scorer_flags_real_error_storm_once() {
    let (Some(hdfs), Some(bgl)) = (read_sample("HDFS"), read_sample("BGL")) else {
        return;
    };
    let mut scorer = Scorer::new(ScorerConfig::default()).expect("default config is valid");
    let instances = ["datanode-1", "datanode-2", "datanode-3"];
    // Ten minutes of HDFS traffic from three instances. Its few exception lines may raise an
    // anomaly each, but never one per line.
    let mut background = 0;
    for (index, row) in hdfs.iter().enumerate() {
        let at = Duration::from_millis(index as u64 * 300);
        let instance = instances[index % instances.len()];
        background += usize::from(scorer.observe(instance, &row.content, at).is_some());
    }
    assert!(
        background <= 5,
        "{background} anomalies from ordinary traffic"
    );
    // After a quiet minute and a half, one instance floods real BGL error lines: a thousand in
    // two seconds.

    let storm: Vec<&str> = bgl
        .iter()
        .filter(|row| {
            row.content
                .starts_with("ciod: Error reading message prefix")
        })
        .map(|row| row.content.as_str())
        .collect();
    assert!(storm.len() >= 10, "the BGL sample holds the storm lines");
    let start = Duration::from_secs(690);
    let mut anomalies = Vec::new();
    for index in 0..1_000u64 {
        let line = storm[index as usize % storm.len()];
        let at = start + Duration::from_millis(index * 2);
        anomalies.extend(scorer.observe("datanode-2", line, at));
    }

    assert_eq!(anomalies.len(), 1, "{anomalies:#?}");
    let anomaly = &anomalies[0];
    assert_eq!(anomaly.instance, "datanode-2");
    assert_eq!(anomaly.reason, AnomalyReason::ErrorTemplate);
    assert!(
        anomaly.templates[0]
            .text
            .starts_with("ciod: Error reading message prefix")
    );
    assert!(!anomaly.samples.is_empty());
    assert!(anomaly.samples.len() <= scorer.config().max_samples);
}
