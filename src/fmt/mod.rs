//! The formatter: one canonical layout for runbook files. Comments are found by
//! scanning the source ([`comments`]), the AST becomes a layout tree with fields in
//! canonical order and every token as written ([`tree`]), comments are attached to the
//! items they precede or trail ([`attach`]), and the tree is printed ([`printer`]).
//! Formatting is idempotent, keeps every comment, and never changes what a file means
//! ([`meaning`] is how that is checked).

pub mod attach;
pub mod comments;
pub mod meaning;
pub mod printer;
pub mod tree;

use crate::syntax::SyntaxError;

/// The canonical form of `source`, or why it does not parse.
pub fn format(source: &str) -> Result<String, SyntaxError> {
    let file = crate::syntax::parse(source)?;
    let comments = comments::scan(source);
    let mut root = tree::Builder::new(source, &comments).file(&file);
    let lines = comments::Lines::new(source);
    attach::attach(&mut root, comments, source, &lines);
    Ok(printer::print(&root))
}

#[cfg(test)]
mod tests {
    use super::format;

    #[track_caller]
    fn check(input: &str, expected: &str) {
        let once = format(input).unwrap();
        assert_eq!(once, expected);
        assert_eq!(format(&once).unwrap(), once, "not idempotent");
    }

    #[test]
    fn orders_fields_and_aligns_values() {
        check(
            "runbook r { version \"1\" title \"T\"\n agent a { exec [\"cargo\"] run \"x -\" network off } }",
            "runbook r {\n  title   \"T\"\n  version \"1\"\n  agent a {\n    run     \"x -\"\n    exec    [\"cargo\"]\n    network off\n  }\n}\n",
        );
    }

    #[test]
    fn keeps_comments_in_place() {
        check(
            "// head\nrunbook r { // open\n  // lead\n  title \"T\" // trail\n  phase p {\n    step s { sh \"true\" }\n    // dangling\n  }\n} // end\n",
            "// head\nrunbook r { // open\n  // lead\n  title \"T\" // trail\n  phase p {\n    step s {\n      sh \"true\"\n    }\n    // dangling\n  }\n} // end\n",
        );
    }

    #[test]
    fn breaks_long_lists_and_lists_with_comments() {
        let long: Vec<String> = (0..12).map(|i| format!("\"path/number/{i}\"")).collect();
        let input = format!(
            "runbook r {{ agent a {{ write [{}] read [\"a\", // why\n\"b\"] }} }}",
            long.join(",")
        );
        let out = format(&input).unwrap();
        assert!(
            out.contains("    write [\n      \"path/number/0\",\n"),
            "{out}"
        );
        assert!(
            out.contains("    read [\n      \"a\", // why\n      \"b\",\n    ]\n"),
            "{out}"
        );
        assert_eq!(format(&out).unwrap(), out);
    }

    #[test]
    fn keeps_triple_quoted_strings_verbatim() {
        let input = "runbook r {\nphase p {\nstep s {\n      prompt \"\"\"\n   keep\n     this\n\"\"\"\n}\n}\n}\n";
        let out = format(input).unwrap();
        assert!(
            out.contains("prompt \"\"\"\n   keep\n     this\n\"\"\"\n"),
            "{out}"
        );
        assert_eq!(format(&out).unwrap(), out);
    }

    #[test]
    fn keeps_one_empty_line() {
        check(
            "runbook r {\n  title \"T\"\n\n\n\n  param a: int = 1\n}\n",
            "runbook r {\n  title \"T\"\n\n  param a: int = 1\n}\n",
        );
    }
}
