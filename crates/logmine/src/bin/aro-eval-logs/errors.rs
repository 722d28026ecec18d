//! A listing of the grouping errors of one dataset, for tuning the miner by hand.

use std::collections::HashMap;

use crate::loghub::Record;

/// Prints the predicted groups that are not exactly one true group, largest first: the mined
/// template, then the true events inside it with their line counts and a sample content.
pub(crate) fn print_errors(records: &[Record], templates: &[(u64, String)], limit: usize) {
    let mut true_sizes: HashMap<&str, usize> = HashMap::new();
    for record in records {
        *true_sizes.entry(&record.event_id).or_default() += 1;
    }
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for (line, (id, _)) in templates.iter().enumerate() {
        groups.entry(*id).or_default().push(line);
    }
    let mut wrong: Vec<&Vec<usize>> = groups
        .values()
        .filter(|lines| {
            let event = &records[lines[0]].event_id;
            let pure = lines.iter().all(|&line| records[line].event_id == *event);
            !pure || true_sizes[event.as_str()] != lines.len()
        })
        .collect();
    wrong.sort_by_key(|lines| std::cmp::Reverse(lines.len()));
    for lines in wrong.into_iter().take(limit) {
        let last = *lines.last().expect("groups are never empty");
        println!("  mined {:>4} lines: {}", lines.len(), templates[last].1);
        let mut events: HashMap<&str, (usize, usize)> = HashMap::new();
        for &line in lines {
            events.entry(&records[line].event_id).or_insert((0, line)).0 += 1;
        }
        let mut events: Vec<_> = events.into_iter().collect();
        events.sort_by_key(|(_, (count, _))| std::cmp::Reverse(*count));
        for (event, (count, line)) in events {
            let record = &records[line];
            println!(
                "    {count:>4} of {:>4} {event}: {}\n              {}",
                true_sizes[event], record.event_template, record.content
            );
        }
    }
}
