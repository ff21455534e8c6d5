<?php
// a front controller for forward(): /start redirects locally to ?to= (default: below the
// mount at /blog), any other path reports its variables
if (($_SERVER['PATH_INFO'] ?? '') === '/start') {
  header('Location: ' . ($_GET['to'] ?? '/blog/landed?y=2'), true, 200);
  exit;
}
require __DIR__ . '/info.php';
