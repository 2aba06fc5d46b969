package network

import (
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

func libcniResult(raw []byte) (cnitypes.Result, error) { return types100.NewResult(raw) }
