//! Progress for long operations (a template import, a workspace build): on a terminal, a
//! spinner line with what is happening and for how long, redrawn under the log lines as they
//! stream in; anywhere else (a pipe, a file, CI) the log lines only, so scripts and logs never
//! see carriage returns or escape codes.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Braille frames, as Coder's CLI (briandowns/spinner set 14) draws them.
const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/// Ten redraws a second: smooth to the eye, nothing to a terminal.
const TICK: Duration = Duration::from_millis(100);
/// Erase the current line and return to its start (ECMA-48 EL, CR).
const CLEAR_LINE: &str = "\r\x1b[2K";

struct Shared {
    out: Box<dyn Write + Send>,
    message: String,
    started: Instant,
    tick: usize,
    /// Whether the spinner line is on screen (so a log line must erase it first).
    drawn: bool,
}

impl Shared {
    fn draw(&mut self) {
        let line = frame(self.tick, &self.message, self.started.elapsed());
        self.tick = self.tick.wrapping_add(1);
        // A terminal that went away is no reason to fail the operation it shows.
        let _ = write!(self.out, "{CLEAR_LINE}{line}");
        let _ = self.out.flush();
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(self.out, "{CLEAR_LINE}");
            let _ = self.out.flush();
            self.drawn = false;
        }
    }
}

/// One spinner frame: `⠙ Building workspace dev (4s)`.
fn frame(tick: usize, message: &str, elapsed: Duration) -> String {
    let glyph = FRAMES[tick % FRAMES.len()];
    format!("{glyph} {message} ({}s)", elapsed.as_secs())
}

/// Shows progress on stderr until dropped.
pub struct Progress {
    /// `None` when stderr is not a terminal: lines are printed plainly.
    spinner: Option<Arc<Mutex<Shared>>>,
    redraw: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// A spinner saying `message` when stderr is a terminal (and `TERM` is not `dumb`); plain
    /// lines otherwise.
    pub fn start(message: &str) -> Progress {
        let terminal =
            std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        if terminal {
            Progress::animated(message, Box::new(std::io::stderr()))
        } else {
            Progress {
                spinner: None,
                redraw: None,
            }
        }
    }

    /// A spinner drawing to `out`, redrawn every tick by a task of its own.
    fn animated(message: &str, out: Box<dyn Write + Send>) -> Progress {
        let shared = Arc::new(Mutex::new(Shared {
            out,
            message: message.to_owned(),
            started: Instant::now(),
            tick: 0,
            drawn: false,
        }));
        lock(&shared).draw();
        let ticker = Arc::clone(&shared);
        let redraw = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.tick().await;
            loop {
                interval.tick().await;
                lock(&ticker).draw();
            }
        });
        Progress {
            spinner: Some(shared),
            redraw: Some(redraw),
        }
    }

    /// Prints a log line above the spinner, which is drawn again beneath it.
    pub fn line(&self, text: &str) {
        match &self.spinner {
            Some(shared) => {
                let mut s = lock(shared);
                s.clear();
                let _ = writeln!(s.out, "{text}");
                s.draw();
            }
            None => eprintln!("{text}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.redraw.take() {
            task.abort();
        }
        if let Some(shared) = &self.spinner {
            lock(shared).clear();
        }
    }
}

/// The spinner's state stays usable after a panic elsewhere: it only holds what to draw.
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Screen(Arc<Mutex<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Screen {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn frames_cycle_and_show_the_elapsed_seconds() {
        assert_eq!(
            frame(0, "Building workspace dev", Duration::from_millis(4200)),
            "⠋ Building workspace dev (4s)"
        );
        assert_eq!(frame(1, "x", Duration::ZERO), "⠙ x (0s)");
        assert_eq!(frame(FRAMES.len(), "x", Duration::ZERO), "⠋ x (0s)");
    }

    #[tokio::test]
    async fn log_lines_print_above_the_spinner_which_is_gone_at_the_end() {
        let screen = Screen::default();
        let progress = Progress::animated("Importing", Box::new(screen.clone()));
        progress.line("Setup: resolving");
        tokio::time::sleep(TICK * 3).await;
        drop(progress);
        let text = screen.text();
        // The first frame, then the line on a cleared line, then the spinner again.
        assert!(
            text.starts_with(
                "\r\x1b[2K⠋ Importing (0s)\r\x1b[2KSetup: resolving\n\r\x1b[2K⠙ Importing"
            ),
            "{text:?}"
        );
        assert!(text.matches('\n').count() == 1, "one log line: {text:?}");
        assert!(text.contains('⠹'), "redrawn while waiting: {text:?}");
        assert!(text.ends_with(CLEAR_LINE), "cleared at the end: {text:?}");
    }
}
