//! Attaching comments to the layout tree. A comment belongs to the innermost item or
//! container around it; inside a container it trails the item that ends on its line,
//! follows the opening bracket on the bracket's line, leads the next item, or, after the
//! last item, stays before the closing bracket. A comment inside an item but outside its
//! block and lists (`step a /* here */ by b { … }`) moves above the item.

use super::comments::{self, Comment, Lines};
use super::tree::{Container, Item, Piece};

/// Distributes `comments` (in source order) over `container` and marks blank lines.
pub fn attach(container: &mut Container, comments: Vec<Comment>, source: &str, lines: &Lines) {
    let mut order: Vec<usize> = (0..container.items.len()).collect();
    order.sort_by_key(|&i| container.items[i].span.start);
    let mut inner: Vec<Vec<Comment>> = vec![Vec::new(); container.items.len()];
    let bracketed = matches!(
        source.as_bytes().get(container.open as usize),
        Some(b'{' | b'[')
    );
    for comment in comments {
        let at = order.partition_point(|&i| container.items[i].span.start <= comment.span.start);
        let prev = at.checked_sub(1).map(|k| order[k]);
        if let Some(p) = prev {
            if comment.span.end <= container.items[p].span.end {
                inner[p].push(comment);
                continue;
            }
            if lines.line(container.items[p].span.end) == lines.line(comment.span.start) {
                container.items[p].trailing.push(comment);
                continue;
            }
        }
        if prev.is_none()
            && bracketed
            && lines.line(container.open) == lines.line(comment.span.start)
        {
            container.open_comments.push(comment);
        } else if let Some(&next) = order.get(at) {
            container.items[next].leading.push(comment);
        } else {
            container.dangling.push(comment);
        }
    }
    for (item, comments) in container.items.iter_mut().zip(inner) {
        item.blank_before = comments::blank_before(source, item.span.start as usize);
        attach_inside(item, comments, source, lines);
    }
}

/// Distributes the comments that lie inside `item` over its block and lists.
fn attach_inside(item: &mut Item, comments: Vec<Comment>, source: &str, lines: &Lines) {
    let mut block_comments = Vec::new();
    let mut list_comments: Vec<Vec<Comment>> = vec![Vec::new(); item.head.len()];
    let mut above = Vec::new();
    for comment in comments {
        let within = |c: &Container| c.open < comment.span.start && comment.span.end <= c.close;
        if item.block.as_ref().is_some_and(within) {
            block_comments.push(comment);
            continue;
        }
        let list = item
            .head
            .iter()
            .position(|p| matches!(p, Piece::List(c) if within(c)));
        match list {
            Some(i) => list_comments[i].push(comment),
            None => above.push(comment),
        }
    }
    item.leading.extend(above);
    if let Some(block) = &mut item.block {
        attach(block, block_comments, source, lines);
    }
    for (piece, comments) in item.head.iter_mut().zip(list_comments) {
        if let Piece::List(list) = piece {
            attach(list, comments, source, lines);
        }
    }
}
