-- a model cannot take its label as input
CREATE SAMPLE SPEC s FROM impressions JOIN user_profile LABEL clicked AS SELECT clicked, age;
CREATE MODEL m USING s INPUTS (age, clicked);
