-- item_stats has no user_id column to bind the user key
CREATE FEATURE GROUP g ON user FROM item_stats AS SELECT ctr;
