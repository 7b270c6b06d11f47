-- Task trees and graphs: declared dependency edges (kept after the tasks end) and the
-- phase of a parent (NULL: run its handler; 'finalize': its children ended, run finalize).

CREATE TABLE task_deps (
    task_id    INTEGER NOT NULL,                     -- the dependent
    depends_on INTEGER NOT NULL,                     -- its dependency
    PRIMARY KEY (task_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX task_deps_reverse ON task_deps (depends_on, task_id);

ALTER TABLE tasks ADD COLUMN phase TEXT;
