-- a group sees only its own source
CREATE FEATURE GROUP g ON user FROM user_profile AS SELECT item_stats.ctr AS c;
