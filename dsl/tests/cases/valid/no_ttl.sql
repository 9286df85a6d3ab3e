-- without TTL a row never expires
CREATE FEATURE GROUP profile_forever ON user FROM user_profile AS SELECT city;
