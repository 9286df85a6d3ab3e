-- quoted names keep case and spaces
CREATE SOURCE "Raw Events" ("User Id" STRING, "TS" TIMESTAMP, "Value" DOUBLE)
EVENT TIME "TS" KAFKA TOPIC 'raw';
CREATE FEATURE GROUP "Raw Values" ON user FROM "Raw Events" KEY ("User Id")
AS SELECT SUM("Value") OVER 1 DAY AS "Value 1d";
