"""Per-aggregate SQL repositories, all working on the connection of one unit of work.

Each module holds the statements of one aggregate (projects, repositories, blobs,
manifests, tags, uploads, users, signing keys, identity, outbox, GC reviews, policies,
control-plane runs). A repository is a thin object over the unit of work's connection:
it never begins, commits or rolls back; :class:`storage.db.metadata.SqlUnitOfWork` does.
So a service can change several aggregates in one transaction.
"""
