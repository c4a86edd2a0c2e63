//! The one door every change goes through.
//!
//! Commands describe each change they make (a directory, a file, an SQL statement, a shell
//! command) and hand the work to [`Changes::apply`]. In a `--not-really` run the description
//! is recorded and the work is skipped, so the printed plan is exactly what a real run does.

use crate::error::Result;

#[derive(Debug, Default)]
pub struct Changes {
    dry_run: bool,
    done: Vec<String>,
}

impl Changes {
    pub fn new(dry_run: bool) -> Self {
        Changes {
            dry_run,
            done: Vec::new(),
        }
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// Runs `work` (or, in a dry run, only records `what`). Returns `None` in a dry run.
    pub fn apply<T>(
        &mut self,
        what: impl Into<String>,
        work: impl FnOnce() -> Result<T>,
    ) -> Result<Option<T>> {
        self.done.push(what.into());
        if self.dry_run {
            return Ok(None);
        }
        work().map(Some)
    }

    /// Records a change made elsewhere on our behalf (e.g. by the server in a function we
    /// called), so the plan printed for a dry run stays complete and in order.
    pub fn record(&mut self, what: impl Into<String>) {
        self.done.push(what.into());
    }

    /// What was done (or, in a dry run, would have been done), in order.
    pub fn described(&self) -> &[String] {
        &self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_records_and_does_nothing() {
        let mut ran = false;
        let mut changes = Changes::new(true);
        let out = changes.apply("create directory /x", || {
            ran = true;
            Ok(1)
        });
        assert_eq!(out.unwrap(), None);
        assert!(!ran);
        assert_eq!(changes.described(), ["create directory /x"]);
    }

    #[test]
    fn a_real_run_does_the_work_and_records_it() {
        let mut changes = Changes::new(false);
        assert_eq!(changes.apply("x", || Ok(7)).unwrap(), Some(7));
        assert_eq!(changes.described(), ["x"]);
    }
}
