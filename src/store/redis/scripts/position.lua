-- position: place in queue (1 = next) and the team's recent interval between claims.
-- ARGV[4]: ticket id.
return position(ARGV[4])
