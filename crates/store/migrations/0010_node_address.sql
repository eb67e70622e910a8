-- Where the other nodes reach a node over HTTP, to carry it the requests that need a session
-- it runs (its base URL, e.g. http://10.0.0.5:8080). NULL: not reachable by the others.
ALTER TABLE nodes ADD COLUMN address VARCHAR(255);
