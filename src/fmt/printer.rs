//! Printing the layout tree: two-space indentation, one item per line, the values of
//! consecutive one-line fields aligned, a list on one line when it fits in
//! [`WIDTH`] columns and holds no comment (otherwise one element per line with a
//! trailing comma), at most one empty line kept between items, comments where
//! [`attach`](super::attach) put them.

use super::tree::{Container, Item, Piece};

/// The column a list must fit in to stay on one line.
pub const WIDTH: usize = 100;

const INDENT: &str = "  ";

/// Prints a file's container.
pub fn print(file: &Container) -> String {
    let mut out = String::new();
    items(&mut out, file, 0, false);
    let trimmed = out.trim_end_matches('\n').len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// The items of a container, each on its own line(s), then its dangling comments.
fn items(out: &mut String, container: &Container, depth: usize, comma: bool) {
    let widths = key_widths(&container.items, depth);
    let mut first = true;
    for (item, width) in container.items.iter().zip(widths) {
        print_item(out, item, depth, width, comma, first);
        first = false;
    }
    for comment in &container.dangling {
        if comment.blank_before && !first {
            out.push('\n');
        }
        first = false;
        line(out, depth, &comment.text);
    }
}

/// The width each item's key is padded to: the longest key among the consecutive
/// alignable items of its class (an empty line or another item ends a run).
fn key_widths(items: &[Item], depth: usize) -> Vec<usize> {
    let mut widths = vec![0; items.len()];
    let mut run: Vec<usize> = Vec::new();
    let close = |run: &mut Vec<usize>, widths: &mut Vec<usize>| {
        let max = run
            .iter()
            .filter_map(|&i| items[i].key.as_ref().map(String::len))
            .max()
            .unwrap_or(0);
        for &i in run.iter() {
            widths[i] = max;
        }
        run.clear();
    };
    for (i, item) in items.iter().enumerate() {
        let alignable = alignable(item, depth);
        let separated = item.blank_before || item.leading.first().is_some_and(|c| c.blank_before);
        let other_class = run.last().is_some_and(|&j| items[j].class != item.class);
        if !alignable || separated || other_class {
            close(&mut run, &mut widths);
        }
        if alignable {
            run.push(i);
        }
    }
    close(&mut run, &mut widths);
    widths
}

/// Whether the item's value starts on its first line: no block, and no list broken
/// over several lines (a triple-quoted string may continue below).
fn alignable(item: &Item, depth: usize) -> bool {
    let has_list = item.head.iter().any(|p| matches!(p, Piece::List(_)));
    item.key.is_some() && item.block.is_none() && (!has_list || flat_lists(item, depth))
}

/// Whether the lists of the item's first line stay on it: nothing in them forces a
/// break and the line fits (measured without the alignment padding, so that aligning
/// never changes where lines break).
fn flat_lists(item: &Item, depth: usize) -> bool {
    let mut width = depth * INDENT.len();
    if let Some(key) = &item.key {
        width += key.len() + 1;
    }
    // Text after the last list does not count: breaking the list would not shorten it.
    let lists_end = item
        .head
        .iter()
        .rposition(|p| matches!(p, Piece::List(_)))
        .map_or(0, |i| i + 1);
    for (i, piece) in item.head[..lists_end].iter().enumerate() {
        if i > 0 {
            width += 1;
        }
        match piece {
            Piece::Text(t) => match t.split_once('\n') {
                Some((first, _)) => return width + first.chars().count() <= WIDTH,
                None => width += t.chars().count(),
            },
            Piece::List(list) => {
                if !can_flatten(list) {
                    return false;
                }
                width += flat_width(list);
            }
        }
    }
    width <= WIDTH
}

/// Whether nothing in the list forces it onto several lines.
fn can_flatten(list: &Container) -> bool {
    list.open_comments.is_empty()
        && list.dangling.is_empty()
        && list.items.iter().all(|item| {
            item.leading.is_empty()
                && item.trailing.is_empty()
                && item.head.iter().all(|p| match p {
                    Piece::Text(t) => !t.contains('\n'),
                    Piece::List(l) => can_flatten(l),
                })
        })
}

fn flat_width(list: &Container) -> usize {
    let mut width = 2;
    for (i, item) in list.items.iter().enumerate() {
        if i > 0 {
            width += 2;
        }
        for (j, piece) in item.head.iter().enumerate() {
            if j > 0 {
                width += 1;
            }
            width += match piece {
                Piece::Text(t) => t.chars().count(),
                Piece::List(l) => flat_width(l),
            };
        }
    }
    width
}

fn line(out: &mut String, depth: usize, text: &str) {
    indent(out, depth);
    out.push_str(text);
    out.push('\n');
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}

fn print_item(
    out: &mut String,
    item: &Item,
    depth: usize,
    key_width: usize,
    comma: bool,
    first: bool,
) {
    for (j, comment) in item.leading.iter().enumerate() {
        if comment.blank_before && !(first && j == 0) {
            out.push('\n');
        }
        line(out, depth, &comment.text);
    }
    if item.blank_before && !(first && item.leading.is_empty()) {
        out.push('\n');
    }
    indent(out, depth);
    let flat = flat_lists(item, depth);
    let mut pieces = item.head.iter().peekable();
    if let Some(key) = &item.key {
        out.push_str(key);
        if pieces.peek().is_some() {
            let pad = key_width.saturating_sub(key.len());
            out.extend(std::iter::repeat(' ').take(pad + 1));
        }
    }
    let mut first_piece = true;
    for piece in pieces {
        if !first_piece {
            out.push(' ');
        }
        first_piece = false;
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::List(list) if flat => flat_list(out, list),
            Piece::List(list) => broken_list(out, list, depth),
        }
    }
    if let Some(block) = &item.block {
        out.push_str(if item.head.is_empty() && item.key.is_none() {
            "{"
        } else {
            " {"
        });
        let empty =
            block.items.is_empty() && block.open_comments.is_empty() && block.dangling.is_empty();
        if empty {
            out.push('}');
        } else {
            for comment in &block.open_comments {
                out.push(' ');
                out.push_str(&comment.text);
            }
            out.push('\n');
            items(out, block, depth + 1, false);
            indent(out, depth);
            out.push('}');
        }
    }
    if comma {
        out.push(',');
    }
    for comment in &item.trailing {
        out.push(' ');
        out.push_str(&comment.text);
    }
    out.push('\n');
}

fn flat_list(out: &mut String, list: &Container) {
    out.push('[');
    for (i, item) in list.items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, piece) in item.head.iter().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::List(l) => flat_list(out, l),
            }
        }
    }
    out.push(']');
}

fn broken_list(out: &mut String, list: &Container, depth: usize) {
    if list.items.is_empty() && list.open_comments.is_empty() && list.dangling.is_empty() {
        out.push_str("[]");
        return;
    }
    out.push('[');
    for comment in &list.open_comments {
        out.push(' ');
        out.push_str(&comment.text);
    }
    out.push('\n');
    items(out, list, depth + 1, true);
    indent(out, depth);
    out.push(']');
}
