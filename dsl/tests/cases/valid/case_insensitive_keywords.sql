-- keywords in any case
create feature group lower_case on user from user_profile ttl 3 days
as select age, Upper(city) as city_up;
Create Sample Spec mixed From impressions Join lower_case Label clicked
As Select clicked, city_up;
