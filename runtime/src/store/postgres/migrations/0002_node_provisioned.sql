-- What each node holds of every provision config's target (a JSON object
-- from "service/function/qualifier" to live provisioned instances), sent
-- with its heartbeat: a config's `current` is the sum over live nodes.
ALTER TABLE nodes ADD COLUMN provisioned TEXT NOT NULL DEFAULT '{}';
