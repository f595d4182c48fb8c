//! Human and JSON output: aligned tables, colour only on a terminal, progress bars only on a
//! terminal. Every cell and field goes through [`neutralise`], so a command cannot forget to.

use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use unicode_width::UnicodeWidthStr;

use crate::cli::ColorChoice;
use crate::exit::{CliError, Code};
use crate::text::{json_safe, neutralise};

/// A colour or weight for a piece of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// As is.
    Plain,
    /// Headings and headers.
    Bold,
    /// Secondary detail.
    Dim,
    /// Failures.
    Red,
    /// Success.
    Green,
    /// Warnings and operator actions.
    Yellow,
    /// Names.
    Cyan,
}

/// Applies styles, or not: ANSI colour only when writing to a terminal (or `--color always`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Painter {
    enabled: bool,
}

impl Painter {
    /// A painter that colours when `enabled`.
    pub(crate) fn new(enabled: bool) -> Self {
        Painter { enabled }
    }

    /// `text` wrapped in the style's escape codes when colour is on. `text` must already be
    /// safe (our own words, or neutralised).
    pub(crate) fn paint(self, style: Style, text: &str) -> String {
        let code = match style {
            Style::Plain => return text.to_owned(),
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Red => "31",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Cyan => "36",
        };
        if self.enabled && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

fn wants_color(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    }
}

/// Where a command writes: stdout for results, stderr for progress.
pub(crate) struct Ui {
    out: io::BufWriter<io::Stdout>,
    painter: Painter,
    err_painter: Painter,
    progress: bool,
    stdin_terminal: bool,
}

impl Ui {
    /// Output set up for this process's stdout and stderr.
    pub(crate) fn new(choice: ColorChoice) -> Self {
        Ui {
            out: io::BufWriter::new(io::stdout()),
            painter: Painter::new(wants_color(choice, io::stdout().is_terminal())),
            err_painter: Painter::new(wants_color(choice, io::stderr().is_terminal())),
            progress: io::stderr().is_terminal(),
            stdin_terminal: io::stdin().is_terminal(),
        }
    }

    /// The painter for stderr.
    pub(crate) fn err_painter(&self) -> Painter {
        self.err_painter
    }

    /// Whether a person can answer a question on stdin.
    pub(crate) fn interactive(&self) -> bool {
        self.stdin_terminal && self.progress
    }

    /// `text` in `style` on stdout.
    pub(crate) fn paint(&self, style: Style, text: &str) -> String {
        self.painter.paint(style, text)
    }

    /// Writes one line of our own (already safe) text.
    pub(crate) fn line(&mut self, text: impl AsRef<str>) -> Result<(), CliError> {
        writeln!(self.out, "{}", text.as_ref())?;
        Ok(())
    }

    /// Writes text that a tenant controls, neutralised, keeping its line breaks.
    pub(crate) fn tenant_text(&mut self, text: &str) -> Result<(), CliError> {
        for line in text.split_inclusive('\n') {
            let (body, newline) = match line.strip_suffix('\n') {
                Some(body) => (body, true),
                None => (line, false),
            };
            write!(self.out, "{}", neutralise(body))?;
            if newline {
                writeln!(self.out)?;
            }
        }
        if !text.is_empty() && !text.ends_with('\n') {
            writeln!(self.out)?;
        }
        Ok(())
    }

    /// A bold heading with a blank line before it (the demo's sections).
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    pub(crate) fn heading(&mut self, text: &str) -> Result<(), CliError> {
        let heading = self.paint(Style::Bold, text);
        writeln!(self.out, "\n{heading}")?;
        Ok(())
    }

    /// Pretty JSON, with the characters serde_json leaves raw escaped (see [`json_safe`]).
    pub(crate) fn json(&mut self, value: &serde_json::Value) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| CliError::new(Code::Failure, e.to_string()))?;
        writeln!(self.out, "{}", json_safe(&text))?;
        Ok(())
    }

    /// Writes a table.
    pub(crate) fn table(&mut self, table: &Table) -> Result<(), CliError> {
        let text = table.render(self.painter);
        self.out.write_all(text.as_bytes())?;
        Ok(())
    }

    /// `label  value` lines with the values aligned; values are neutralised.
    pub(crate) fn fields(&mut self, fields: &[(&str, String)]) -> Result<(), CliError> {
        let width = fields.iter().map(|(l, _)| l.width()).max().unwrap_or(0);
        for (label, value) in fields {
            let pad = " ".repeat(width - label.width());
            let label = self.paint(Style::Bold, label);
            writeln!(self.out, "{label}{pad}  {}", neutralise(value))?;
        }
        Ok(())
    }

    /// Raw bytes on stdout (the exact output of a plugin, when asked for).
    pub(crate) fn raw(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    /// Flushes stdout.
    pub(crate) fn flush(&mut self) -> Result<(), CliError> {
        self.out.flush()?;
        Ok(())
    }

    /// A progress bar on stderr for `len` steps; hidden unless stderr is a terminal.
    pub(crate) fn bar(&self, len: u64, message: impl Into<Cow<'static, str>>) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("{msg} [{bar:30}] {human_pos}/{human_len} ({eta})")
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(message);
        bar
    }

    /// A spinner on stderr for work of unknown length, showing how many steps were done when
    /// `counting`; hidden unless stderr is a terminal.
    pub(crate) fn spinner(
        &self,
        message: impl Into<Cow<'static, str>>,
        counting: bool,
    ) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let template = if counting {
            "{spinner} {msg} {human_pos} ({elapsed})"
        } else {
            "{spinner} {msg} ({elapsed})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            spinner.set_style(style);
        }
        spinner.set_message(message);
        spinner.enable_steady_tick(Duration::from_millis(100));
        spinner
    }
}

/// One cell of a [`Table`].
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    /// A cell in `style`.
    pub(crate) fn styled(text: impl Into<String>, style: Style) -> Self {
        Cell {
            text: text.into(),
            style,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::styled(text, Style::Plain)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::styled(text, Style::Plain)
    }
}

/// A table whose columns are aligned by display width. Cells are neutralised and cut to a
/// maximum width when added, so tenant text can neither drive the terminal nor break the layout.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<Cell>>,
    max_cell: usize,
}

impl Table {
    /// A table with these column headers; cells are cut at 60 columns.
    pub(crate) fn new(headers: &[&'static str]) -> Self {
        Table {
            headers: headers.to_vec(),
            right: vec![false; headers.len()],
            rows: Vec::new(),
            max_cell: 60,
        }
    }

    /// Right-aligns the columns at `columns` (numbers).
    pub(crate) fn right(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            if let Some(r) = self.right.get_mut(c) {
                *r = true;
            }
        }
        self
    }

    /// Cuts cells at `width` columns (`usize::MAX`: never).
    pub(crate) fn max_cell(mut self, width: usize) -> Self {
        self.max_cell = width.max(2);
        self
    }

    /// Adds a row; missing cells are empty.
    pub(crate) fn push(&mut self, row: Vec<Cell>) {
        let row = row
            .into_iter()
            .map(|cell| Cell {
                text: cut(&neutralise(&cell.text), self.max_cell),
                style: cell.style,
            })
            .collect();
        self.rows.push(row);
    }

    /// Whether no row was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, with a header line.
    pub(crate) fn render(&self, painter: Painter) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.width()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.text.width());
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = self
            .headers
            .iter()
            .map(|h| Cell::styled(*h, Style::Bold))
            .collect();
        let empty = Cell::from("");
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).unwrap_or(&empty);
                let pad = " ".repeat(width - cell.text.width().min(*width));
                let text = painter.paint(cell.style, &cell.text);
                let last = i + 1 == columns;
                if i > 0 {
                    line.push_str("  ");
                }
                if self.right[i] {
                    line.push_str(&pad);
                    line.push_str(&text);
                } else {
                    line.push_str(&text);
                    if !last {
                        line.push_str(&pad);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `text` cut to at most `max` display columns, ending in `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.width() <= max {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut width = 0;
    for c in text.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if width + w > max - 1 {
            break;
        }
        out.push(c);
        width += w;
    }
    out.push('…');
    out
}

/// Writes a file so that it is either complete or absent: into a temporary file in the same
/// directory, synced, then renamed over `path`. A failure leaves `path` as it was.
pub(crate) fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let failed = |e: io::Error| {
        CliError::new(
            Code::Failure,
            format!("cannot write {}: {e}", path.display()),
        )
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    let value = {
        let mut out = io::BufWriter::new(file.as_file_mut());
        let value = write(&mut out)?;
        out.flush().map_err(failed)?;
        value
    };
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_by_display_width_and_neutralise_cells() {
        let mut table = Table::new(&["NAME", "KEYS"]).right(&[1]);
        table.push(vec!["acme".into(), "7".into()]);
        table.push(vec!["\u{4e16}\u{754c}\x1b[2J".into(), "12345".into()]);
        let text = table.render(Painter::new(false));
        assert_eq!(
            text,
            "NAME            KEYS\n\
             acme               7\n\
             \u{4e16}\u{754c}\\u{1b}[2J  12345\n"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn long_cells_are_cut_with_an_ellipsis() {
        let mut table = Table::new(&["A"]).max_cell(5);
        table.push(vec!["abcdefgh".into()]);
        assert_eq!(table.render(Painter::new(false)), "A\nabcd…\n");
    }

    #[test]
    fn colour_only_when_enabled() {
        assert_eq!(Painter::new(false).paint(Style::Red, "x"), "x");
        assert_eq!(
            Painter::new(true).paint(Style::Red, "x"),
            "\x1b[31mx\x1b[0m"
        );
        assert!(!wants_color(ColorChoice::Auto, false));
        assert!(wants_color(ColorChoice::Always, false));
    }
}
