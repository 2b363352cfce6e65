//! The aggregator's cron jobs and the cron expressions that trigger them.
//!
//! The expressions must equal the `[triggers] crons` of `wrangler/aggregator.toml`;
//! a test in the xtask crate checks that they do.

/// A scheduled job of the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Every minute: alert rules and rollup of the current hour.
    Minutely,
    /// Five minutes past every hour: finalize closed hours, roll days and months.
    Hourly,
    /// Once a day: retention purge.
    Daily,
}

impl Job {
    /// Every job, in schedule order.
    pub const ALL: [Job; 3] = [Job::Minutely, Job::Hourly, Job::Daily];

    /// The cron expression that triggers the job.
    pub const fn cron(self) -> &'static str {
        match self {
            Job::Minutely => "* * * * *",
            Job::Hourly => "5 * * * *",
            Job::Daily => "15 3 * * *",
        }
    }

    /// The job's name in the `job_runs` table.
    pub const fn name(self) -> &'static str {
        match self {
            Job::Minutely => "minutely",
            Job::Hourly => "hourly",
            Job::Daily => "daily",
        }
    }

    /// The job a cron expression triggers, if any.
    pub fn for_cron(cron: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|job| job.cron() == cron.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::Job;

    #[test]
    fn every_cron_maps_back_to_its_job() {
        for job in Job::ALL {
            assert_eq!(Job::for_cron(job.cron()), Some(job));
        }
        assert_eq!(Job::for_cron("0 0 1 1 *"), None);
    }
}
