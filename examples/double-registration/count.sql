SELECT COUNT(*) AS personer FROM reg_a a WHERE a.pnr IN (SELECT pnr FROM reg_b);
