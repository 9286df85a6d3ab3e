-- model inputs listed explicitly, in the model's order
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile JOIN item_stats LABEL clicked
AS SELECT request_id, clicked, age, city, ctr;
CREATE MODEL m USING s INPUTS (ctr, age);
