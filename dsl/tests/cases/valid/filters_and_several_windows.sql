-- FILTER clauses and windows from minutes to weeks
CREATE FEATURE GROUP click_windows ON user FROM impressions
AS SELECT COUNT(*) FILTER (WHERE clicked) OVER 30 MINUTES AS clicks_30m,
          COUNT(*) FILTER (WHERE clicked AND position < 3) OVER 1 HOUR AS top_clicks_1h,
          SUM(dwell) FILTER (WHERE dwell > 0) OVER 1 WEEK AS dwell_1w,
          COUNT(*) OVER 28 DAYS AS impr_28d;
