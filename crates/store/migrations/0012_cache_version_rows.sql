-- A row for every topic from the start, so that a change raises its topic's version with one
-- UPDATE inside the change's own transaction. Versions are only compared for equality: starting
-- them again from zero makes every node drop its copies once.
DELETE FROM cache_versions;
INSERT INTO cache_versions (topic, version) VALUES ('users', 0);
INSERT INTO cache_versions (topic, version) VALUES ('webhooks', 0);
INSERT INTO cache_versions (topic, version) VALUES ('sessions', 0);
INSERT INTO cache_versions (topic, version) VALUES ('otp_settings', 0);
