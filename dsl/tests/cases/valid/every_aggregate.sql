-- COUNT(*), COUNT(x), SUM, AVG, MIN, MAX, LAST
CREATE FEATURE GROUP dwell_stats ON user FROM impressions
AS SELECT COUNT(*) OVER 1 DAY AS n_1d,
          COUNT(dwell) OVER 1 DAY AS n_dwell_1d,
          SUM(dwell) OVER 1 DAY AS dwell_sum_1d,
          AVG(position) OVER 1 DAY AS position_avg_1d,
          MIN(dwell) OVER 1 DAY AS dwell_min_1d,
          MAX(position) OVER 1 DAY AS position_max_1d,
          LAST(item_id) OVER 1 DAY AS last_item_1d,
          LAST(tags) OVER 1 DAY AS last_tags_1d;
