//! A line diff for a person: what changed between two JSON definitions, such as a tool's approved
//! and current sanitized definitions (`aegis-gate tools show`, `GET /workspaces/{id}/tools`).
//!
//! Owns: pretty-printing both values (object keys sorted, as `serde_json` keeps them), a longest
//! common subsequence over their lines once the common head and tail are set aside, and the
//! `- `/`+ ` lines with up to [`CONTEXT`] unchanged lines around each change.
//! Never: reads a clock or a file; builds a table of more than [`MAX_CELLS`] cells: past that,
//! the changed middle is shown as all its old lines removed, then all its new lines added.

use serde_json::Value;

/// Unchanged lines shown before and after a change.
const CONTEXT: usize = 3;
/// The largest table the longest common subsequence may use (old lines × new lines of the changed
/// middle): 1 Mi cells of 4 bytes.
const MAX_CELLS: usize = 1 << 20;

/// What happened to one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Same,
    Removed,
    Added,
}

/// The diff from `old` to `new` as printed lines: `"  "`, `"- "` or `"+ "` and a line of their
/// pretty JSON; a run of unchanged lines far from any change is one line `"  ... (N unchanged
/// lines)"`. Empty when both print the same.
pub(crate) fn definitions(old: &Value, new: &Value) -> Vec<String> {
    let old = serde_json::to_string_pretty(old).unwrap_or_default();
    let new = serde_json::to_string_pretty(new).unwrap_or_default();
    lines(&old, &new)
}

/// The diff of two texts, line by line, as [`definitions`] prints it.
pub(crate) fn lines(old: &str, new: &str) -> Vec<String> {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let ops = script(&old, &new);
    if ops.iter().all(|(op, _)| *op == Op::Same) {
        return Vec::new();
    }
    render(&ops)
}

/// Every line of `old` and `new` once, in order, marked same, removed or added.
pub(super) fn script<'t>(old: &[&'t str], new: &[&'t str]) -> Vec<(Op, &'t str)> {
    let head = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let (old_rest, new_rest) = (
        old.get(head..).unwrap_or(&[]),
        new.get(head..).unwrap_or(&[]),
    );
    let tail = old_rest
        .iter()
        .rev()
        .zip(new_rest.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let old_mid = old_rest.get(..old_rest.len() - tail).unwrap_or(&[]);
    let new_mid = new_rest.get(..new_rest.len() - tail).unwrap_or(&[]);
    let mut ops: Vec<(Op, &str)> = old.iter().take(head).map(|l| (Op::Same, *l)).collect();
    if old_mid.len().saturating_mul(new_mid.len()) <= MAX_CELLS {
        ops.extend(common_subsequence(old_mid, new_mid));
    } else {
        ops.extend(old_mid.iter().map(|l| (Op::Removed, *l)));
        ops.extend(new_mid.iter().map(|l| (Op::Added, *l)));
    }
    ops.extend(old_rest.iter().skip(old_mid.len()).map(|l| (Op::Same, *l)));
    ops
}

/// The classic dynamic programme: `table[i][j]` is the length of the longest common subsequence
/// of `old[i..]` and `new[j..]`; walking it from the start gives the script. Every index stays
/// below `old.len()`, `new.len()` or the table's size by the loops' bounds.
fn common_subsequence<'t>(old: &[&'t str], new: &[&'t str]) -> Vec<(Op, &'t str)> {
    let width = new.len() + 1;
    let mut table = vec![0u32; (old.len() + 1) * width];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            table[i * width + j] = if old[i] == new[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(old.len() + new.len());
    while i < old.len() && j < new.len() {
        if old[i] == new[j] {
            ops.push((Op::Same, old[i]));
            (i, j) = (i + 1, j + 1);
        } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
            ops.push((Op::Removed, old[i]));
            i += 1;
        } else {
            ops.push((Op::Added, new[j]));
            j += 1;
        }
    }
    ops.extend(old.iter().skip(i).map(|l| (Op::Removed, *l)));
    ops.extend(new.iter().skip(j).map(|l| (Op::Added, *l)));
    ops
}

/// The printed lines: changes with their context, far unchanged runs folded into one line.
fn render(ops: &[(Op, &str)]) -> Vec<String> {
    let near_change = |at: usize| {
        let from = at.saturating_sub(CONTEXT);
        ops.iter()
            .skip(from)
            .take(at - from + CONTEXT + 1)
            .any(|(op, _)| *op != Op::Same)
    };
    let mut out = Vec::new();
    let mut folded = 0usize;
    for (at, (op, line)) in ops.iter().enumerate() {
        if *op == Op::Same && !near_change(at) {
            folded += 1;
            continue;
        }
        fold(&mut out, &mut folded);
        let mark = match op {
            Op::Same => "  ",
            Op::Removed => "- ",
            Op::Added => "+ ",
        };
        out.push(format!("{mark}{line}"));
    }
    fold(&mut out, &mut folded);
    out
}

fn fold(out: &mut Vec<String>, folded: &mut usize) {
    match *folded {
        0 => {}
        1 => out.push("  ... (1 unchanged line)".to_owned()),
        n => out.push(format!("  ... ({n} unchanged lines)")),
    }
    *folded = 0;
}
