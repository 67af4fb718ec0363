"""Every job transition, written once: submission, reads, cancel, claims and leases, steps,
artifacts, events and the reconciler's pass (docs/adrs/011-job-execution.md).

The functions take a synchronous `sqlalchemy.orm.Session` and never commit: the caller owns the
transaction. The worker calls them directly; the api, whose sessions are async, through
`AsyncSession.run_sync`, so the same statements serve both.
"""
