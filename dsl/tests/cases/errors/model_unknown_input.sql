-- inputs are spec columns
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile LABEL clicked AS SELECT clicked, age;
CREATE MODEL m USING s INPUTS (age, city);
