-- source columns named differently from the entity key
CREATE SOURCE follows (follower STRING, followee STRING, ts TIMESTAMP)
EVENT TIME ts KAFKA TOPIC 'follows';
CREATE FEATURE GROUP followers ON user FROM follows KEY (followee)
AS SELECT COUNT(*) OVER 7 DAYS AS new_followers_7d;
