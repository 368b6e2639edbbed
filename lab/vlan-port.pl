#!/usr/bin/perl
# A VLAN access port in user space, for hosts whose kernel has neither 802.1Q VLAN devices nor bridge VLAN
# filtering (lab/net-deploy.vm.test.ts): two tap devices, <trunk> (put on the lab bridge by the caller) and
# <access> (given the host's addresses on the VLAN by the caller). Frames tagged <vid> that reach <trunk> leave
# <access> untagged; every frame sent on <access> enters the bridge through <trunk> tagged <vid>. Other frames are
# dropped. Prints "ready" once both taps exist; exits when its standard input closes (its parent went away).
# Perl (perl-base is Essential in Debian) with built-ins only: TUNSETIFF by ioctl, 4-argument select.
use strict;
use warnings;

my ($trunk, $access, $vid) = @ARGV;
die "usage: vlan-port.pl <trunk tap> <access tap> <vlan id 1-4094>\n"
  unless defined $vid && $vid =~ /^[0-9]{1,4}\z/ && $vid >= 1 && $vid <= 4094;
for ($trunk, $access) { die "bad interface name\n" unless /^[A-Za-z0-9][A-Za-z0-9_-]{0,14}\z/ }

sub tap {
  my ($name) = @_;
  open(my $fh, '+<', '/dev/net/tun') or die "/dev/net/tun: $!\n";
  # struct ifreq: name[16], flags = IFF_TAP | IFF_NO_PI; TUNSETIFF = _IOW('T', 202, int)
  ioctl($fh, 0x400454ca, pack('Z16 s x22', $name, 0x0002 | 0x1000)) or die "TUNSETIFF $name: $!\n";
  binmode $fh;
  return $fh;
}

my $t = tap($trunk);
my $a = tap($access);
$| = 1;
print "ready\n";
my $tag = pack('n n', 0x8100, $vid);
my $rin = '';
vec($rin, fileno($t), 1) = 1;
vec($rin, fileno($a), 1) = 1;
vec($rin, fileno(STDIN), 1) = 1;
while (1) {
  my $n = select(my $rout = $rin, undef, undef, undef);
  next if $n <= 0;
  if (vec($rout, fileno(STDIN), 1)) {
    exit 0 unless sysread(STDIN, my $x, 4096);
  }
  if (vec($rout, fileno($t), 1)) {
    my $len = sysread($t, my $f, 65536);
    if ($len && $len >= 18 && unpack('n', substr($f, 12, 2)) == 0x8100 && (unpack('n', substr($f, 14, 2)) & 0x0fff) == $vid) {
      syswrite($a, substr($f, 0, 12) . substr($f, 16));
    }
  }
  if (vec($rout, fileno($a), 1)) {
    my $len = sysread($a, my $f, 65536);
    syswrite($t, substr($f, 0, 12) . $tag . substr($f, 12)) if $len && $len >= 14;
  }
}
