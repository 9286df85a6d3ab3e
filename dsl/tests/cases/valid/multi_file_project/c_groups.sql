CREATE FEATURE GROUP shop_stats ON shop FROM visits
AS SELECT SUM(revenue) FILTER (WHERE bought) OVER 7 DAYS AS revenue_7d;
